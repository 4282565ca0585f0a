package bus

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Op is the first field of a route message on a gateway's route stream.
type Op byte

// Route operations. Fields are separated by '\n'; the packet, last, may
// itself contain '\n'.
const (
	OpDeliver   Op = 'D' // D\n<sid>\n<ms>\n<packet>: write packet to the session's stream (routed at unix ms)
	OpWake      Op = 'W' // W\n<sid>\n<pollid>: the session's mailbox has packets for the poll parked here
	OpOffer     Op = 'O' // O\n<sid>\n<pollid>\n<ms>\n<packet>: packet, taken from the mailbox for the poll parked here, answers it (routed at unix ms)
	OpKick      Op = 'K' // K\n<sid>\n<pollid>: a newer poll arrived elsewhere; answer this one with 8::
	OpClose     Op = 'C' // C\n<sid>\n<reason>\n<packet>: the session ended; write packet (may be empty), then close
	OpJoin      Op = 'J' // J\n<sid>\n<ns>\n<room>: the session joined a room (room "": the namespace)
	OpLeave     Op = 'L' // L\n<sid>\n<ns>\n<room>: the session left a room (room "": the namespace)
	OpBroadcast Op = 'B' // B\n<ns>\n<room>\n<except sid>\n<ms>\n<packet>: to the namespace (room "") or room
	OpAuth      Op = 'A' // A\n<request id>\n<1|0>\n<reason>\n<data JSON>: the answer to an authorize signal
	OpProbe     Op = 'P' // P\n<nonce>\n: a readiness probe a gateway sends itself (P\nopen:<nonce>\n opens a route stream)
	OpBatch     Op = 'M' // M\n then <byte length>\n<route message>, repeated: one commit's routes for a gateway, in order
)

// ErrBadRoute is returned by ParseRoute for a message that is not a route.
var ErrBadRoute = errors.New("bus: malformed route message")

// Route is one message on a gateway's route stream. For OpAuth,
// SID holds the request id, Arg "1" (allowed) or "0", Room the reason and
// Packet the data JSON.
type Route struct {
	Op     Op
	SID    string // D W K C J L; for B: the excepted sid ("" none)
	Arg    string // W K O: poll id; C: reason; J L B: namespace
	Room   string // J L B
	Packet string // D O C B
	Time   int64  // D O B: unix ms when Redis routed it (0: unknown)
}

// String encodes r for a route stream entry (RouteField).
func (r Route) String() string {
	switch r.Op {
	case OpDeliver:
		return "D\n" + r.SID + "\n" + strconv.FormatInt(r.Time, 10) + "\n" + r.Packet
	case OpProbe:
		return "P\n" + r.SID + "\n"
	case OpWake, OpKick:
		return string(r.Op) + "\n" + r.SID + "\n" + r.Arg
	case OpOffer:
		return "O\n" + r.SID + "\n" + r.Arg + "\n" + strconv.FormatInt(r.Time, 10) + "\n" + r.Packet
	case OpClose:
		return "C\n" + r.SID + "\n" + r.Arg + "\n" + r.Packet
	case OpJoin, OpLeave:
		return string(r.Op) + "\n" + r.SID + "\n" + r.Arg + "\n" + r.Room
	case OpBroadcast:
		return "B\n" + r.Arg + "\n" + r.Room + "\n" + r.SID + "\n" + strconv.FormatInt(r.Time, 10) + "\n" + r.Packet
	case OpAuth:
		return "A\n" + r.SID + "\n" + r.Arg + "\n" + r.Room + "\n" + r.Packet
	}
	return ""
}

// EachRoute calls fn with every route message in msg, in order: msg
// itself, or the messages of a batch (OpBatch). A malformed batch stops at
// the fault with ErrBadRoute after the messages before it.
func EachRoute(msg string, fn func(string)) error {
	rest, ok := strings.CutPrefix(msg, "M\n")
	if !ok {
		fn(msg)
		return nil
	}
	for rest != "" {
		i := strings.IndexByte(rest, '\n')
		if i <= 0 || i > 10 {
			return fmt.Errorf("%w: batch length at %.20q", ErrBadRoute, rest)
		}
		n, err := strconv.Atoi(rest[:i])
		if err != nil || n < 0 || n > len(rest)-i-1 {
			return fmt.Errorf("%w: batch length %.20q", ErrBadRoute, rest[:i])
		}
		fn(rest[i+1 : i+1+n])
		rest = rest[i+1+n:]
	}
	return nil
}

// ParseRoute decodes a route message.
func ParseRoute(msg string) (Route, error) {
	if len(msg) < 2 || msg[1] != '\n' {
		return Route{}, fmt.Errorf("%w: %.20q", ErrBadRoute, msg)
	}
	op, rest := Op(msg[0]), msg[2:]
	var n int
	switch op {
	case OpWake, OpKick, OpProbe:
		n = 2
	case OpDeliver, OpClose, OpJoin, OpLeave:
		n = 3
	case OpAuth, OpOffer:
		n = 4
	case OpBroadcast:
		n = 5
	default:
		return Route{}, fmt.Errorf("%w: op %q", ErrBadRoute, op)
	}
	f := strings.SplitN(rest, "\n", n)
	if len(f) != n {
		return Route{}, fmt.Errorf("%w: op %q has %d fields", ErrBadRoute, op, len(f))
	}
	r := Route{Op: op}
	switch op {
	case OpDeliver:
		r.SID, r.Packet = f[0], f[2]
		r.Time, _ = strconv.ParseInt(f[1], 10, 64)
	case OpWake, OpKick:
		r.SID, r.Arg = f[0], f[1]
	case OpOffer:
		r.SID, r.Arg, r.Packet = f[0], f[1], f[3]
		r.Time, _ = strconv.ParseInt(f[2], 10, 64)
	case OpProbe:
		r.SID = f[0]
	case OpClose:
		r.SID, r.Arg, r.Packet = f[0], f[1], f[2]
	case OpJoin, OpLeave:
		r.SID, r.Arg, r.Room = f[0], f[1], f[2]
	case OpBroadcast:
		r.Arg, r.Room, r.SID, r.Packet = f[0], f[1], f[2], f[4]
		r.Time, _ = strconv.ParseInt(f[3], 10, 64)
	case OpAuth:
		r.SID, r.Arg, r.Room, r.Packet = f[0], f[1], f[2], f[3]
	}
	return r, nil
}
