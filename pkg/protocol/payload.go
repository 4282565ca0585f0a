package protocol

import (
	"bytes"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// FrameMark opens and closes a frame's length in a polling payload: U+FFFD,
// sent as the UTF-8 bytes EF BF BD.
const FrameMark = "\ufffd"

// maxFrameDigits bounds a frame's length field; 10 digits is more than any
// packet a server accepts.
const maxFrameDigits = 10

// AppendPayload appends packets (already encoded) to dst as one polling
// payload: a single packet as is, several each framed as
// \ufffd<length>\ufffd<packet>, length in UTF-16 code units (UTF16Len).
// No packets append nothing.
func AppendPayload(dst []byte, packets ...[]byte) []byte {
	if len(packets) == 1 {
		return append(dst, packets[0]...)
	}
	for _, p := range packets {
		dst = AppendFrame(dst, p)
	}
	return dst
}

// AppendFrame appends one framed packet, \ufffd<length>\ufffd<packet>, to
// dst: for building a payload packet by packet without a [][]byte. A payload
// of one packet must not be framed (use AppendPayload, or append the packet).
func AppendFrame(dst, packet []byte) []byte {
	dst = append(dst, FrameMark...)
	dst = strconv.AppendUint(dst, uint64(UTF16Len(packet)), 10)
	dst = append(dst, FrameMark...)
	return append(dst, packet...)
}

// UTF16Len returns the JavaScript String.length of UTF-8 text: one per
// character of the Basic Multilingual Plane, two per supplementary
// character (a surrogate pair), and one per maximal invalid subsequence, as
// the U+FFFD a client decodes it to (RepairUTF8).
func UTF16Len(b []byte) int {
	n := 0
	for i := 0; i < len(b); {
		if b[i] < utf8.RuneSelf {
			n++
			i++
			continue
		}
		r, size := decodeRune(b[i:])
		n += utf16Units(r)
		i += size
	}
	return n
}

// decodeRune is utf8.DecodeRune, except that a maximal invalid subsequence
// (invalidLen) is one RuneError, as a client's decoder sees it.
func decodeRune(b []byte) (rune, int) {
	r, size := utf8.DecodeRune(b)
	if r == utf8.RuneError && size == 1 {
		size = invalidLen(b)
	}
	return r, size
}

// utf16Units is how many UTF-16 code units r takes (RuneError counts 1).
func utf16Units(r rune) int {
	if r >= 0x10000 {
		return 2
	}
	return 1
}

// utf16Prefix returns how many bytes of b hold exactly units UTF-16 code
// units, or -1 when b is too short or the count ends inside a surrogate pair.
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
		r, size := decodeRune(b[i:])
		w := utf16Units(r)
		if w > units {
			return -1
		}
		units -= w
		i += size
	}
	return i
}

// DecodePayload calls fn with each packet of a polling payload, in order,
// without allocating. A payload that does not start with \ufffd is a single
// packet (an empty payload is one empty packet); otherwise it must be a
// sequence of \ufffd<length>\ufffd<packet> frames, length in decimal UTF-16
// code units. The slices passed to fn alias b and are valid only as long as b.
//
// It returns ErrBadFrame for a malformed frame (an empty, non-decimal or
// over-long length, a missing \ufffd, a length past the end or splitting a
// character), ErrTooLarge when a packet is longer than maxPacket bytes
// (maxPacket <= 0: no limit), or fn's first error as is. Either way it stops
// there; packets before that point have already been passed to fn. It does
// not modify b.
func DecodePayload(b []byte, maxPacket int, fn func(packet []byte) error) error {
	if !bytes.HasPrefix(b, []byte(FrameMark)) {
		if maxPacket > 0 && len(b) > maxPacket {
			return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(b), maxPacket)
		}
		return fn(b)
	}
	total := len(b)
	for len(b) > 0 {
		at := total - len(b)
		if !bytes.HasPrefix(b, []byte(FrameMark)) {
			return fmt.Errorf("%w: no \\ufffd at byte %d", ErrBadFrame, at)
		}
		b = b[len(FrameMark):]
		end := bytes.Index(b, []byte(FrameMark))
		if end < 0 {
			return fmt.Errorf("%w: no closing \\ufffd after byte %d", ErrBadFrame, at)
		}
		if end == 0 || end > maxFrameDigits {
			return fmt.Errorf("%w: length of %d digits at byte %d", ErrBadFrame, end, at)
		}
		n := 0
		for _, c := range b[:end] {
			if c < '0' || c > '9' {
				return fmt.Errorf("%w: length %q at byte %d", ErrBadFrame, clip(b[:end]), at)
			}
			n = n*10 + int(c-'0')
		}
		b = b[end+len(FrameMark):]
		// A packet has at least as many bytes as UTF-16 code units, so a
		// length over the limit is refused before it is scanned.
		if maxPacket > 0 && n > maxPacket {
			return fmt.Errorf("%w: %d UTF-16 units at byte %d, limit %d bytes", ErrTooLarge, n, at, maxPacket)
		}
		k := utf16Prefix(b, n)
		if k < 0 {
			return fmt.Errorf("%w: length %d at byte %d runs past the end or splits a character", ErrBadFrame, n, at)
		}
		if maxPacket > 0 && k > maxPacket {
			return fmt.Errorf("%w: %d bytes at byte %d, limit %d", ErrTooLarge, k, at, maxPacket)
		}
		if err := fn(b[:k]); err != nil {
			return err
		}
		b = b[k:]
	}
	return nil
}
