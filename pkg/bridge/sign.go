package bridge

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Signature headers. The bridge sets both on every request:
//
//	X-Realtime-Timestamp: <unix seconds>
//	X-Realtime-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>
const (
	HeaderTimestamp = "X-Realtime-Timestamp"
	HeaderSignature = "X-Realtime-Signature"
)

// DefaultReplayWindow is how far a request's timestamp may be from the
// verifier's clock (either way) for Verify to accept it.
const DefaultReplayWindow = 5 * time.Minute

// Errors Verify returns.
var (
	// ErrBadSignature: the signature header is missing, malformed, or not
	// the HMAC of this timestamp and body with this secret.
	ErrBadSignature = errors.New("bridge: bad signature")
	// ErrStale: the timestamp is missing, malformed, or outside the replay
	// window.
	ErrStale = errors.New("bridge: timestamp outside the replay window")
)

// Sign returns the signature header's value for body sent at ts:
// "v1=" + hex(HMAC-SHA256(secret, "<unix seconds>." + body)).
func Sign(secret []byte, ts time.Time, body []byte) string {
	return "v1=" + hex.EncodeToString(mac(secret, strconv.FormatInt(ts.Unix(), 10), body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a request as an app should: timestamp is the
// X-Realtime-Timestamp header (unix seconds), signature the
// X-Realtime-Signature header, body the raw request body. It returns
// ErrStale when the timestamp is more than window (DefaultReplayWindow when
// 0) from now, ErrBadSignature when the signature does not match (compared
// in constant time). The header may hold several comma-separated "v1="
// values (during a secret rotation); one match is enough.
func Verify(secret []byte, timestamp, signature string, body []byte, now time.Time, window time.Duration) error {
	if window <= 0 {
		window = DefaultReplayWindow
	}
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %.20q", ErrStale, timestamp)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > window || d < -window {
		return fmt.Errorf("%w: %v from now", ErrStale, d.Round(time.Second))
	}
	want := mac(secret, timestamp, body)
	for _, v := range strings.Split(signature, ",") {
		h, ok := strings.CutPrefix(strings.TrimSpace(v), "v1=")
		if !ok {
			continue
		}
		got, err := hex.DecodeString(h)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return ErrBadSignature
}
