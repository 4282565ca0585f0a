package protocol

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Handshake is the body of a handshake answer.
type Handshake struct {
	SID              string
	Heartbeat, Close time.Duration
	Transports       []string
}

func secs(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}

// String renders sid:heartbeat:close:transports, timeouts in whole seconds,
// rounded up and at least 1: an empty or zero timeout would make the client
// time out at once (reference issue #872).
func (h Handshake) String() string {
	return fmt.Sprintf("%s:%d:%d:%s", h.SID, secs(h.Heartbeat), secs(h.Close), strings.Join(h.Transports, ","))
}

// ParseHandshake decodes a handshake body (for clients and tests).
func ParseHandshake(s string) (Handshake, error) {
	f := strings.SplitN(s, ":", 4)
	if len(f) != 4 || f[0] == "" {
		return Handshake{}, ErrMalformed
	}
	hb, err1 := strconv.Atoi(f[1])
	cl, err2 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil {
		return Handshake{}, ErrMalformed
	}
	return Handshake{SID: f[0], Heartbeat: time.Duration(hb) * time.Second, Close: time.Duration(cl) * time.Second,
		Transports: strings.Split(f[3], ",")}, nil
}
