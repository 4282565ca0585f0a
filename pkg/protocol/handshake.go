package protocol

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Handshake is the body of a handshake answer,
// sid:heartbeatTimeout:closeTimeout:transports.
type Handshake struct {
	SID        string        // the session id; must not contain ':'
	Heartbeat  time.Duration // the heartbeat timeout told to the client
	Close      time.Duration // the close timeout
	Transports []string      // offered transports, in preferred order
}

// AppendHandshake appends h's encoding (see Handshake.String) to dst.
func AppendHandshake(dst []byte, h Handshake) []byte {
	dst = append(dst, h.SID...)
	dst = append(dst, ':')
	dst = strconv.AppendInt(dst, wholeSeconds(h.Heartbeat), 10)
	dst = append(dst, ':')
	dst = strconv.AppendInt(dst, wholeSeconds(h.Close), 10)
	dst = append(dst, ':')
	for i, t := range h.Transports {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, t...)
	}
	return dst
}

// String renders sid:heartbeat:close:transports, the timeouts in whole
// seconds, rounded up and at least 1, never empty: the client turns an
// empty or zero timeout into a 0 ms timer and disconnects at once
// (reference issue #872). Transports are joined with ','.
func (h Handshake) String() string {
	return string(AppendHandshake(make([]byte, 0, 64), h))
}

// wholeSeconds rounds d up to whole seconds, at least 1.
func wholeSeconds(d time.Duration) int64 {
	s := int64(d / time.Second)
	if d%time.Second > 0 {
		s++
	}
	return max(s, 1)
}

// ParseHandshake decodes a handshake body, for clients and tests. An empty
// timeout field (the reference's answer when heartbeats are disabled)
// decodes as 0; an empty transport list as nil. Errors wrap ErrMalformed.
func ParseHandshake(s string) (Handshake, error) {
	f := strings.SplitN(s, ":", 4)
	if len(f) != 4 {
		return Handshake{}, fmt.Errorf("%w: handshake has %d fields, want 4", ErrMalformed, len(f))
	}
	if f[0] == "" {
		return Handshake{}, fmt.Errorf("%w: handshake has no sid", ErrMalformed)
	}
	h := Handshake{SID: f[0]}
	for i, d := range []*time.Duration{&h.Heartbeat, &h.Close} {
		field := f[1+i]
		if field == "" {
			continue
		}
		n, ok := parseSmall([]byte(field))
		if !ok {
			return Handshake{}, fmt.Errorf("%w: handshake timeout %q", ErrMalformed, clip([]byte(field)))
		}
		*d = time.Duration(n) * time.Second
	}
	if f[3] != "" {
		h.Transports = strings.Split(f[3], ",")
	}
	return h, nil
}
