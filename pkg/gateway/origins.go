package gateway

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// originAllowed applies the origins allow-list as the reference does: "*:*"
// allows everything (also requests with no origin); otherwise the origin (the
// Origin header, else Referer; "null" counts as "*") must match
// "host:port", "host:*" or "*:port". An origin without a port has its
// scheme's default: 443 for https and wss, 80 otherwise (the reference
// takes 80 whatever the scheme, so "host:443" refused https pages).
func originAllowed(origins []string, origin, referer string) bool {
	if slices.Contains(origins, "*:*") {
		return true
	}
	if origin == "" {
		origin = referer
	}
	if origin == "" {
		return false
	}
	if origin == "null" {
		origin = "*"
	}
	host, port := "*", "80"
	if origin != "*" {
		u, err := url.Parse(origin)
		if err != nil || u.Hostname() == "" {
			return false
		}
		host = u.Hostname()
		switch p := u.Port(); {
		case p != "":
			port = p
		case strings.EqualFold(u.Scheme, "https") || strings.EqualFold(u.Scheme, "wss"):
			port = "443"
		}
	}
	return slices.Contains(origins, host+":"+port) ||
		slices.Contains(origins, host+":*") ||
		slices.Contains(origins, "*:"+port)
}

// flashPolicy renders the Flash socket policy file for the origins list.
func flashPolicy(origins []string) []byte {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0"?>` + "\n")
	b.WriteString(`<!DOCTYPE cross-domain-policy SYSTEM "http://www.macromedia.com/xml/dtds/cross-domain-policy.dtd">` + "\n")
	b.WriteString("<cross-domain-policy>\n")
	for _, o := range origins {
		host, port := o, "*"
		if i := strings.LastIndex(o, ":"); i >= 0 { // an IPv6 host has colons of its own
			host, port = o[:i], o[i+1:]
		}
		if _, err := strconv.Atoi(port); err != nil {
			port = "*"
		}
		b.WriteString(`<allow-access-from domain="` + xmlAttr(host) + `" to-ports="` + xmlAttr(port) + `"/>` + "\n")
	}
	b.WriteString("</cross-domain-policy>\n")
	return []byte(b.String())
}

func xmlAttr(s string) string {
	r := strings.NewReplacer(`&`, "&amp;", `<`, "&lt;", `>`, "&gt;", `"`, "&quot;")
	return r.Replace(s)
}
