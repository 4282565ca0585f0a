package bridge

import (
	"errors"
	"strconv"
	"testing"
	"time"
)

// A verifier accepts what Sign produced and refuses everything a forger or
// a replayer could send: another body, another timestamp, another secret,
// a stale or future timestamp, a malformed header.
func TestSignVerify(t *testing.T) {
	secret := []byte("s3cret")
	body := []byte(`{"v":1,"signals":[]}`)
	now := time.Unix(1_700_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	sig := Sign(secret, now, body)
	// HMAC-SHA256("s3cret", "1700000000." + body), computed independently
	// (python3 -c 'import hmac,hashlib; print(hmac.new(b"s3cret", b"1700000000.{\"v\":1,\"signals\":[]}", hashlib.sha256).hexdigest())').
	const want = "v1=ec82a2053a2a5994252a98465f7f16990babb6e19db9b0b5f6eb061c6d45562a"
	if sig != want {
		t.Fatalf("Sign = %s, want %s", sig, want)
	}
	if err := Verify(secret, ts, sig, body, now, 0); err != nil {
		t.Fatalf("own signature refused: %v", err)
	}
	if err := Verify(secret, ts, "v0=abc, "+sig, body, now.Add(4*time.Minute), 0); err != nil {
		t.Errorf("one of several values, 4 min later: %v", err)
	}
	for _, c := range []struct {
		name          string
		secret        string
		ts, sig, body string
		now           time.Time
		want          error
	}{
		{"other body", "s3cret", ts, sig, `{"v":1,"signals":[{}]}`, now, ErrBadSignature},
		{"other secret", "other", ts, sig, string(body), now, ErrBadSignature},
		{"timestamp changed", "s3cret", strconv.FormatInt(now.Unix()+1, 10), sig, string(body), now, ErrBadSignature},
		{"no signature", "s3cret", ts, "", string(body), now, ErrBadSignature},
		{"not hex", "s3cret", ts, "v1=zz", string(body), now, ErrBadSignature},
		{"no v1 prefix", "s3cret", ts, sig[3:], string(body), now, ErrBadSignature},
		{"replayed 6 min later", "s3cret", ts, sig, string(body), now.Add(6 * time.Minute), ErrStale},
		{"from 6 min in the future", "s3cret", ts, sig, string(body), now.Add(-6 * time.Minute), ErrStale},
		{"no timestamp", "s3cret", "", sig, string(body), now, ErrStale},
		{"timestamp in ms", "s3cret", ts + "000", sig, string(body), now, ErrStale},
	} {
		if err := Verify([]byte(c.secret), c.ts, c.sig, []byte(c.body), c.now, 0); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if err := Verify(secret, ts, sig, body, now.Add(90*time.Second), time.Minute); !errors.Is(err, ErrStale) {
		t.Errorf("a 1 min window, 90 s later: %v", err)
	}
}
