package bus

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrBadReply is returned by ParseReply for a message that is not a reply.
var ErrBadReply = errors.New("bus: malformed reply message")

// Reply is a client's answer to a server emit that asked for an ack, as the
// session scripts publish it on the reply channel (Keys.ReplyChannel) the
// emitting worker registered for the ack id: "<sid>\n<id>\n<args>", args
// being the client's JSON array ("" when it sent none).
type Reply struct {
	SID  string
	ID   uint64 // the server's ack id
	Args string
}

// String encodes r for PUBLISH.
func (r Reply) String() string {
	return r.SID + "\n" + strconv.FormatUint(r.ID, 10) + "\n" + r.Args
}

// ParseReply decodes a reply message.
func ParseReply(msg string) (Reply, error) {
	f := strings.SplitN(msg, "\n", 3)
	if len(f) != 3 {
		return Reply{}, fmt.Errorf("%w: %d fields in %.20q", ErrBadReply, len(f), msg)
	}
	id, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return Reply{}, fmt.Errorf("%w: id %.20q", ErrBadReply, f[1])
	}
	return Reply{SID: f[0], ID: id, Args: f[2]}, nil
}
