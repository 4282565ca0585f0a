package protocol

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// AppendJSString appends s as a string literal that is valid JSON and safe
// inside a <script>: it escapes '"', '\\', control characters, '<', '>', '&',
// U+2028 and U+2029, and writes invalid UTF-8 as \ufffd.
func AppendJSString(dst []byte, s []byte) []byte {
	return appendJS(dst, s, false)
}

func appendJS(dst []byte, s []byte, slash bool) []byte {
	dst = append(dst, '"')
	for len(s) > 0 {
		c := s[0]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20 || c == '<' || c == '>' || c == '&' || c == 0x7f:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			case c == '/' && slash:
				dst = append(dst, '\\', '/')
			default:
				dst = append(dst, c)
			}
			s = s[1:]
			continue
		}
		r, size := utf8.DecodeRune(s)
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, `\ufffd`...)
		case r == 0x2028 || r == 0x2029:
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			dst = append(dst, s[:size]...)
		}
		s = s[size:]
	}
	return append(dst, '"')
}

// AppendJSONP appends io.j[index](<payload as a string literal>);.
func AppendJSONP(dst []byte, index string, payload []byte) []byte {
	dst = append(dst, "io.j["...)
	dst = append(dst, index...)
	dst = append(dst, "]("...)
	dst = AppendJSString(dst, payload)
	return append(dst, ");"...)
}

// AppendJSONPError appends io.j[index](new Error(<msg>));.
func AppendJSONPError(dst []byte, index string, msg string) []byte {
	dst = append(dst, "io.j["...)
	dst = append(dst, index...)
	dst = append(dst, "](new Error("...)
	dst = AppendJSString(dst, []byte(msg))
	return append(dst, "));"...)
}

// AppendHTMLFileScript appends one htmlfile chunk: <script>_(<payload>);</script>, with "/" escaped too.
func AppendHTMLFileScript(dst []byte, payload []byte) []byte {
	dst = append(dst, "<script>_("...)
	dst = appendJS(dst, payload, true)
	return append(dst, ");</script>"...)
}

var htmlHeader = []byte("<html><body><script>var _ = function (msg) { parent.s._(msg, document); };</script>" + strings.Repeat(" ", 173))

// HTMLFileHeader returns the first chunk of an htmlfile stream: the script
// defining _ and 173 spaces of padding, as the reference sends. Do not modify it.
func HTMLFileHeader() []byte { return htmlHeader }

// DecodeJSONPBody decodes the form field d of a jsonp POST (a JSON string) into the payload it holds.
func DecodeJSONPBody(d []byte) ([]byte, error) {
	var s string
	if err := json.Unmarshal(d, &s); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadJSONP, err)
	}
	return []byte(s), nil
}

// ValidJSONPIndex reports whether s is 1 to 10 decimal digits.
func ValidJSONPIndex(s string) bool {
	if s == "" || len(s) > 10 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
