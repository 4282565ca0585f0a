// Package wsengine is the socket end of the gateway's websocket and
// flashsocket connections (RFC 6455; flashsocket is the same protocol over
// Flash's socket): the upgrade, reads in bursts woken by one epoll poller
// for the whole process, frames written without blocking where the socket
// takes them, and the close handshake. It knows nothing of Socket.IO or of
// sessions: it writes the strings it is given, each as one text frame, and
// hands the data frames it reads to a Handler.
//
// The seam. Package gateway's streamConn (a session's queue, writer
// hand-off and end) sees a Conn through a four-method interface (TryWrite,
// Flush, Write, Close) and implements Handler (Frame, ControlDue,
// ReadsEnded); its unit tests use a fake in place of Conn. A Conn's life:
//
//	Upgrade          the handshake; gorilla/websocket parses frames from a
//	                 bufio.Reader this package keeps (hijacker)
//	Start(h)         reads begin: the socket joins the poller, parked
//	  poller event   readWake: read frames until none is buffered
//	                 (Handler.Frame each), re-arm, park again
//	  ping           the pong is kept; Handler.ControlDue asks for a write
//	TryWrite/Write   frames (the pong first), written by the caller
//	Close            the echo of the client's close frame, then close;
//	                 a parked reader's end is reported from here
//	ReadsEnded(err)  once, when reading ends for any reason
//
// Refuse replaces Start for a connection whose session cannot be opened.
//
// Goroutines: none while a connection is idle. The poller's goroutine
// starts a reader goroutine when a parked socket has data; it reads what is
// buffered and exits. Writes run on the caller's goroutine: TryWrite never
// blocks (it keeps what the socket did not take for Flush), Write and Flush
// wait for the socket at most Options.WriteTimeout. Where the poller is not
// available (not Linux, or the socket has no descriptor) a connection has a
// reader goroutine that waits in its read, and TryWrite writes nothing.
//
// Ownership: one goroutine at a time calls TryWrite, Flush, Write, Close
// and Refuse (the caller's writer); Start is called once, before any of
// them. Handler methods are called from the reader, one at a time, except
// ReadsEnded for a parked connection, which Close calls. A Conn's mutex
// guards what the reader and the writer share (the pong, the client's
// close code, parked, closed) and is never held while calling the
// Handler, nor together with the poller's mutex.
//
// The gorilla/websocket dependency. The reader knows a burst is over when
// the bufio.Reader gorilla parses from is empty; that needs gorilla to reuse
// the reader a hijacked connection hands it (it does for a reader larger
// than 256 bytes and Upgrader.ReadBufferSize 0, v1.5.3's server.go).
// TestBurstReadsEveryBufferedFrame fails if it stops doing so: frames would
// then sit in gorilla's own buffer with nothing to wake the reader.
// gorilla also writes, from the reader, the close frame it sends when a
// frame breaks the read limit or the protocol; that write may interleave
// with the writer's.
package wsengine
