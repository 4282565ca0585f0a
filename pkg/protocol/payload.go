package protocol

import (
	"bytes"
	"strconv"
	"unicode/utf8"
)

// frameMark opens and closes a frame's length (U+FFFD, EF BF BD).
const frameMark = "\ufffd"

// AppendPayload appends packets, already encoded, as one polling payload:
// a single packet as is, several each framed with its UTF-16 length.
func AppendPayload(dst []byte, packets ...[]byte) []byte {
	if len(packets) == 1 {
		return append(dst, packets[0]...)
	}
	for _, p := range packets {
		dst = append(dst, frameMark...)
		dst = strconv.AppendInt(dst, int64(UTF16Len(p)), 10)
		dst = append(dst, frameMark...)
		dst = append(dst, p...)
	}
	return dst
}

// UTF16Len returns the JavaScript length of UTF-8 text: supplementary
// characters count 2; each invalid byte counts 1, as its U+FFFD would.
func UTF16Len(b []byte) int {
	n := 0
	for len(b) > 0 {
		if b[0] < utf8.RuneSelf {
			n++
			b = b[1:]
			continue
		}
		r, size := utf8.DecodeRune(b)
		if r >= 0x10000 {
			n += 2
		} else {
			n++
		}
		b = b[size:]
	}
	return n
}

// utf16Prefix returns how many bytes of b hold units UTF-16 code units, or -1.
func utf16Prefix(b []byte, units int) int {
	i := 0
	for units > 0 {
		if i >= len(b) {
			return -1
		}
		if b[i] < utf8.RuneSelf {
			i++
			units--
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		w := 1
		if r >= 0x10000 {
			w = 2
		}
		if w > units {
			return -1
		}
		units -= w
		i += size
	}
	return i
}

// DecodePayload calls fn with each packet of a payload, in order, without
// allocating: a payload that does not start with \ufffd is one packet. It
// returns ErrBadFrame for a malformed frame, ErrTooLarge when a packet is
// longer than maxPacket bytes (maxPacket <= 0: no limit), or fn's first
// error. Packets before a bad frame have already been passed to fn.
func DecodePayload(b []byte, maxPacket int, fn func(packet []byte) error) error {
	if !bytes.HasPrefix(b, []byte(frameMark)) {
		if maxPacket > 0 && len(b) > maxPacket {
			return ErrTooLarge
		}
		return fn(b)
	}
	for len(b) > 0 {
		if !bytes.HasPrefix(b, []byte(frameMark)) {
			return ErrBadFrame
		}
		b = b[len(frameMark):]
		j := bytes.Index(b, []byte(frameMark))
		if j <= 0 || j > 10 {
			return ErrBadFrame
		}
		n := 0
		for _, c := range b[:j] {
			if c < '0' || c > '9' {
				return ErrBadFrame
			}
			n = n*10 + int(c-'0')
		}
		b = b[j+len(frameMark):]
		k := utf16Prefix(b, n)
		if k < 0 {
			return ErrBadFrame
		}
		if maxPacket > 0 && k > maxPacket {
			return ErrTooLarge
		}
		if err := fn(b[:k]); err != nil {
			return err
		}
		b = b[k:]
	}
	return nil
}
