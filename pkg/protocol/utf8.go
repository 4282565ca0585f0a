package protocol

import "unicode/utf8"

// Invalid UTF-8 is repaired as the reference server decodes it: Node's
// Buffer.toString('utf8') (and every browser's TextDecoder) follows the
// WHATWG Encoding Standard's UTF-8 decoder, which replaces each maximal
// subpart of an ill-formed sequence with one U+FFFD (Unicode 15, §3.9,
// "U+FFFD Substitution of Maximal Subparts"). A maximal subpart is a lead
// byte followed by the continuation bytes that could still have begun a
// well-formed character; any other invalid byte is a subpart of its own.
// So FF FE C3 28 E2 80 becomes U+FFFD U+FFFD U+FFFD ( U+FFFD: FF, FE and C3
// (a lead followed by a non-continuation) are one U+FFFD each, and the
// truncated E2 80 is one U+FFFD. This differs from strings.ToValidUTF8 (one
// U+FFFD per run of invalid bytes) and from replacing each invalid byte.
// Overlong forms (C0 80, E0 80 80), encoded surrogates (ED A0 80), code
// points past U+10FFFF (F4 90 ...) and 5- and 6-byte forms (F8 ..., FC
// ...) are one U+FFFD per byte, as their second byte is already out of
// range.

// RepairUTF8 returns b with every maximal invalid subsequence replaced by
// U+FFFD (see above), and whether it held any. Valid input is returned as
// is, without allocating; otherwise the result is a new slice (b is not
// modified), at most three times as long as b.
func RepairUTF8(b []byte) ([]byte, bool) {
	if utf8.Valid(b) {
		return b, false
	}
	return appendRepaired(make([]byte, 0, len(b)+len(b)/2+3), b), true
}

// RepairUTF8String is RepairUTF8 for a string: valid input is returned as
// is, without allocating.
func RepairUTF8String(s string) (string, bool) {
	if utf8.ValidString(s) {
		return s, false
	}
	return string(appendRepaired(make([]byte, 0, len(s)+len(s)/2+3), s)), true
}

// AppendRepairedUTF8 appends b to dst with every maximal invalid
// subsequence replaced by U+FFFD, as RepairUTF8 does.
func AppendRepairedUTF8(dst, b []byte) []byte {
	if utf8.Valid(b) {
		return append(dst, b...)
	}
	return appendRepaired(dst, b)
}

// appendRepaired appends s to dst, replacing each maximal invalid
// subsequence with U+FFFD.
func appendRepaired[S string | []byte](dst []byte, s S) []byte {
	start := 0 // s[start:i] is valid and not yet copied
	for i := 0; i < len(s); {
		if s[i] < utf8.RuneSelf {
			i++
			continue
		}
		// At most 4 bytes are converted, so the conversion does not allocate.
		r, size := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
		if r != utf8.RuneError || size != 1 {
			i += size
			continue
		}
		dst = append(dst, s[start:i]...)
		dst = append(dst, "\uFFFD"...)
		i += invalidLen(s[i:])
		start = i
	}
	return append(dst, s[start:]...)
}

// invalidLen returns the length of the maximal subpart at the start of s,
// which must not begin with a well-formed character: 1 for a byte that
// cannot lead (80..C1, F5..FF) or a lead whose next byte is out of its
// range, else the lead and the continuation bytes that follow in range
// (a sequence cut short by the end of s or by a byte out of range). Its
// ranges are those of Unicode's table 3-7 (well-formed byte sequences).
func invalidLen[S string | []byte](s S) int {
	var n int            // the length the lead promises
	lo, hi := 0x80, 0xBF // the range of the next byte
	switch c := s[0]; {
	case c >= 0xC2 && c <= 0xDF:
		n = 2
	case c == 0xE0:
		n, lo = 3, 0xA0 // no overlong forms
	case c == 0xED:
		n, hi = 3, 0x9F // no surrogates
	case c >= 0xE1 && c <= 0xEF:
		n = 3
	case c == 0xF0:
		n, lo = 4, 0x90 // no overlong forms
	case c == 0xF4:
		n, hi = 4, 0x8F // nothing past U+10FFFF
	case c >= 0xF1 && c <= 0xF3:
		n = 4
	default:
		return 1
	}
	i := 1
	for i < n && i < len(s) && int(s[i]) >= lo && int(s[i]) <= hi {
		i++
		lo, hi = 0x80, 0xBF
	}
	return i
}
