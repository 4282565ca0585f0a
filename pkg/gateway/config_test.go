package gateway

import (
	"errors"
	"testing"
)

// A mailbox whose hard bound is smaller than one accepted packet or POST
// body is refused at start: an echo of that packet would end a session that
// drains as fast as it can.
func TestLimitsChecked(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want error
	}{
		{Config{}, nil}, // the defaults
		{Config{MailboxBytes: 300_000, MaxBodyBytes: 1_000_000, MaxPacketBytes: 1_000_000}, nil},
		{Config{MailboxBytes: 50_000, MaxBodyBytes: 300_000}, ErrLimits},
		{Config{MailboxBytes: 50_000, MaxBodyBytes: 100_000, MaxPacketBytes: 300_000}, ErrLimits},
	} {
		tc.cfg.defaults()
		if err := tc.cfg.checkLimits(); !errors.Is(err, tc.want) {
			t.Errorf("mailbox %d, body %d, packet %d: %v, want %v",
				tc.cfg.MailboxBytes, tc.cfg.MaxBodyBytes, tc.cfg.MaxPacketBytes, err, tc.want)
		}
	}
}

// An origins pattern that no origin could match is refused at start, with
// what is wrong: the check (as the reference's) takes host:port, host:* and
// *:port only.
func TestOriginsChecked(t *testing.T) {
	for _, tc := range []struct {
		origins []string
		want    error
	}{
		{nil, nil}, // the default, *:*
		{[]string{"example.com:443", "example.com:*", "*:8080", "::1:80"}, nil},
		{[]string{"foo.test"}, ErrOrigins},
		{[]string{"*.example.com:443"}, ErrOrigins},
		{[]string{"example.com:https"}, ErrOrigins},
		{[]string{":80"}, ErrOrigins},
		{[]string{"[::1]:8080"}, ErrOrigins},
	} {
		cfg := Config{Origins: tc.origins}
		cfg.defaults()
		if err := cfg.checkOrigins(); !errors.Is(err, tc.want) {
			t.Errorf("%q: %v, want %v", tc.origins, err, tc.want)
		}
	}
}
