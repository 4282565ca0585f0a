package gateway

import (
	"time"

	"github.com/realtime/realtime/pkg/protocol"
	"github.com/realtime/realtime/pkg/session"
)

// Invalid UTF-8 is repaired at the edge, in both directions, with
// protocol.RepairUTF8 (each maximal invalid subsequence becomes one U+FFFD,
// as the reference's Node decoder makes it):
//
//   - in: a websocket or flashsocket frame, a POST body (xhr-polling,
//     htmlfile, jsonp-polling) and the jsonp form field d are repaired
//     before they are decoded, so signals carry valid UTF-8 and frame
//     lengths are counted as the reference counts them. Limits on a packet
//     (Config.MaxPacketBytes) apply to the repaired packet, which is what
//     goes on; the body limit applies to the bytes received.
//   - out: every packet is repaired before it is framed and written
//     (websocket frames, polling payloads, jsonp and htmlfile scripts), so
//     a worker that publishes invalid bytes cannot make a browser close the
//     websocket (1006) or a payload's lengths disagree with the client.
//
// Where the reference differs, it is wrong and we do not follow it: it
// decodes each chunk of a POST body and each fragment of a websocket
// message on its own (a character split across two becomes U+FFFDs; here
// the whole body or message is decoded at once), and when the jsonp field d
// holds both raw non-ASCII characters and percent-escapes that are not
// UTF-8, its querystring fallback cuts every character to its low byte
// (here the raw body and then the unescaped field are repaired, which
// gives the reference's result whenever d is percent-encoded, as browsers
// send it).
//
// Valid input, nearly all of it, costs one utf8.Valid scan and no
// allocation. Each repair is counted in realtime_gateway_invalid_utf8_total
// by direction and logged at most once per utf8LogEvery per direction.

// Directions of a repair: the label of Metrics.InvalidUTF8.
const (
	utf8In  = 0 // from a client
	utf8Out = 1 // to a client
)

var utf8Directions = [...]string{utf8In: "in", utf8Out: "out"}

// utf8LogEvery is the least time between two log lines about repaired
// input in one direction; the next line says how many went unlogged.
const utf8LogEvery = 10 * time.Second

// repairIn returns b with invalid UTF-8 repaired (b itself when valid,
// without allocating) and whether it was, counting and logging a repair of
// what the client of session sid sent over transport.
func (g *Gateway) repairIn(b []byte, transport, sid string) ([]byte, bool) {
	fixed, repaired := protocol.RepairUTF8(b)
	if repaired {
		g.repaired(utf8In, len(b), len(fixed), transport, sid)
	}
	return fixed, repaired
}

// repairOut repairs invalid UTF-8 in packets in place, before they are
// framed and written to the client of session sid over transport.
func (g *Gateway) repairOut(packets []string, transport, sid string) {
	for i, p := range packets {
		if fixed, repaired := protocol.RepairUTF8String(p); repaired {
			packets[i] = fixed
			g.repaired(utf8Out, len(p), len(fixed), transport, sid)
		}
	}
}

// repaired counts one repair and logs it unless a line was logged for the
// direction less than utf8LogEvery ago.
func (g *Gateway) repaired(dir, before, after int, transport, sid string) {
	g.metrics.InvalidUTF8.WithLabelValues(utf8Directions[dir]).Inc()
	if ok, unlogged := g.utf8Log[dir].Allow(time.Now(), utf8LogEvery); ok {
		g.log.Warn("invalid UTF-8 repaired", "direction", utf8Directions[dir], "transport", transport, "sid", session.LogSID(sid),
			"bytes", before, "repaired_bytes", after, "unlogged_before", unlogged)
	}
}
