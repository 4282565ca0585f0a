package protocol

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// jsSafe marks the ASCII bytes that appendJS copies as they are: printable,
// and none of '"', '\\', '<', '>', '&' (DEL is escaped too).
var jsSafe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = !strings.ContainsRune(`"\<>&`, rune(c))
	}
	return t
}()

// AppendJSString appends s to dst as a double-quoted string literal that is
// valid JSON and valid JavaScript, and safe inside an HTML <script>: it
// escapes '"' and '\\', control characters and DEL, '<' '>' '&' as \u003c
// \u003e \u0026 (so neither "</script>" nor "<!--" can appear), U+2028 and
// U+2029 as \u2028 \u2029 (line terminators in older JavaScript), and
// writes each maximal invalid UTF-8 subsequence as \ufffd (RepairUTF8).
// JSON.parse or eval of the result gives back s, repaired as RepairUTF8
// repairs it.
func AppendJSString(dst []byte, s []byte) []byte {
	return appendJS(dst, s, false)
}

// appendJS is AppendJSString for a string or a byte slice; slash also
// escapes '/' as \/ (htmlfile).
func appendJS[S string | []byte](dst []byte, s S, slash bool) []byte {
	dst = append(dst, '"')
	start := 0 // s[start:i] is safe and not yet copied
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if jsSafe[c] && (c != '/' || !slash) {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\', '/':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		// At most 4 bytes are converted, so the conversion does not allocate.
		r, size := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			size = invalidLen(s[i:])
			start = i + size
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			start = i + size
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// AppendJSONP appends a jsonp-polling response body, io.j[<index>](<payload
// as AppendJSString writes it>);, to dst. index must already be validated
// (ValidJSONPIndex): it is written as is.
func AppendJSONP(dst []byte, index string, payload []byte) []byte {
	dst = append(dst, "io.j["...)
	dst = append(dst, index...)
	dst = append(dst, "]("...)
	dst = appendJS(dst, payload, false)
	return append(dst, ");"...)
}

// AppendJSONPError appends a jsonp error body, io.j[<index>](new
// Error("<msg>"));, to dst (a refused jsonp handshake). index must already
// be validated (ValidJSONPIndex); msg is escaped as AppendJSString does.
func AppendJSONPError(dst []byte, index string, msg string) []byte {
	dst = append(dst, "io.j["...)
	dst = append(dst, index...)
	dst = append(dst, "](new Error("...)
	dst = appendJS(dst, msg, false)
	return append(dst, "));"...)
}

// AppendHTMLFileScript appends one htmlfile chunk,
// <script>_(<payload as a string literal>);</script>, to dst. The literal is
// escaped as AppendJSString does, and '/' as \/ too, as the reference does
// since its fix for "</script>" (#1251).
func AppendHTMLFileScript(dst []byte, payload []byte) []byte {
	dst = append(dst, "<script>_("...)
	dst = appendJS(dst, payload, true)
	return append(dst, ");</script>"...)
}

// HTMLFilePadding is how many spaces follow the htmlfile header script, as
// the reference sends (old IE renders nothing of a response before some
// bytes have arrived).
const HTMLFilePadding = 173

var htmlHeader = []byte("<html><body><script>var _ = function (msg) { parent.s._(msg, document); };</script>" +
	strings.Repeat(" ", HTMLFilePadding))

// HTMLFileHeader returns the first chunk of an htmlfile stream: the script
// defining _, which hands each payload to the client, followed by
// HTMLFilePadding spaces. The slice is shared: do not modify it (its
// capacity is its length, so appending to it copies).
func HTMLFileHeader() []byte { return htmlHeader[:len(htmlHeader):len(htmlHeader)] }

// DecodeJSONPBody decodes the form field d of a jsonp-polling POST (already
// form-decoded): a JSON string literal, JSON.stringify of the payload. It
// returns the payload in a new slice; invalid UTF-8 is repaired first
// (RepairUTF8, as the reference decodes the form field) and lone surrogate
// escapes become U+FFFD. Errors wrap ErrBadJSONP (the reference server
// crashes on them).
func DecodeJSONPBody(d []byte) ([]byte, error) {
	if i := skipSpace(d, 0); i == len(d) || d[i] != '"' {
		return nil, fmt.Errorf("%w: not a JSON string", ErrBadJSONP)
	}
	d, _ = RepairUTF8(d)
	var s string
	if err := json.Unmarshal(d, &s); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadJSONP, err)
	}
	return []byte(s), nil
}

// ValidJSONPIndex reports whether s is a valid jsonp index: ^\d+$, and at
// most 10 digits.
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
