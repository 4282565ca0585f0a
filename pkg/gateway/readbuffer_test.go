package gateway

import "testing"

// A read buffer configured below wsengine.DefaultReadBufferBytes is raised to it, so
// gorilla reads through the buffer the streamConn watches: of two frames
// that arrive in one write, the second is read at once, not left in a
// buffer the poller cannot see until the client sends more.
func TestSmallReadBufferStillSeesBufferedFrames(t *testing.T) {
	tg := newLiveGateway(t, Config{ReadBufferBytes: 1})
	sid, ws := tg.openWS()
	tg.waitSignals(sid, "connect")
	// Two masked text frames (RFC 6455 5.2, mask key 0) in one write.
	var b []byte
	for _, p := range []string{"3:::one", "3:::two"} {
		b = append(b, 0x81, 0x80|byte(len(p)), 0, 0, 0, 0)
		b = append(b, p...)
	}
	if _, err := ws.NetConn().Write(b); err != nil {
		t.Fatal(err)
	}
	tg.waitSignals(sid, "connect", "message one", "message two")
}
