package wsengine

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// Defaults of Options.
const (
	// DefaultReadBufferBytes is Options.ReadBufferBytes' default and
	// minimum, in bytes. gorilla reads through the hijacked bufio.Reader
	// only when it holds more than 256 bytes (websocket.Upgrader.Upgrade);
	// below that it reads through a reader of its own, which the Conn cannot
	// see, so a frame already in gorilla's buffer would wait, unseen by the
	// poller, for the client's next bytes. 512 clears that bound with room
	// to spare, and a heartbeat or a short event arrives in one read.
	DefaultReadBufferBytes = 512
	// DefaultWriteTimeout is Options.WriteTimeout's default.
	DefaultWriteTimeout = 10 * time.Second
)

// ErrTooLarge is the reason given to Handler.ReadsEnded when the client
// sent a data frame over Options.MaxMessageBytes.
var ErrTooLarge = errors.New("wsengine: message over the read limit")

// ErrProtocol is wrapped by the error that ends the reads of a client that
// broke the websocket protocol (RFC 6455: a bad opcode, reserved bits set,
// a fragment out of place, a control frame over 125 bytes, a bad close
// code, ...), to which gorilla/websocket answered close 1002.
var ErrProtocol = errors.New("wsengine: websocket protocol violation")

// Options configure Upgrade.
type Options struct {
	// ReadBufferBytes is the read buffer a connection holds for its life; a
	// larger frame is read in several syscalls. Default and minimum:
	// DefaultReadBufferBytes (512).
	ReadBufferBytes int
	// MaxMessageBytes is the largest data frame read; a larger one ends the
	// reads with ErrTooLarge. Default: 0, no limit.
	MaxMessageBytes int
	// WriteTimeout bounds each write that has to wait for the socket.
	// Default: DefaultWriteTimeout (10s).
	WriteTimeout time.Duration
	// CheckOrigin reports whether the request's origin may open a
	// connection; a refused upgrade is answered 403. Default (nil):
	// gorilla/websocket's, the Origin's host must be the request's.
	CheckOrigin func(r *http.Request) bool
}

// Handler receives what a Conn reads. Its methods are called by the
// connection's reader, one at a time, except that Close calls ReadsEnded
// when no reader runs. They do not write: TryWrite, Flush, Write and Close
// belong to the owner of the connection's writes (ControlDue asks it).
type Handler interface {
	// Frame is called with each data frame read, in order: text is false
	// for a binary frame; data is valid only during the call. It returns
	// false to stop reading (ReadsEnded(nil) follows).
	Frame(text bool, data []byte) bool
	// ControlDue says the Conn has a control frame of its own to write
	// (the pong to a ping): the owner of its writes should call Write, with
	// no packets if none wait, soon.
	ControlDue()
	// ReadsEnded is called once, when reading has ended: err is nil after
	// Frame returned false, ErrTooLarge for a frame over the limit, and
	// otherwise the read's error (the client closed the connection or sent
	// a close frame, or Close closed it here).
	ReadsEnded(err error)
}

// Conn is one upgraded websocket connection. See the package comment for
// who calls what.
type Conn struct {
	// Set by Upgrade and Start, then read-only.
	nc           net.Conn
	writeTimeout time.Duration
	h            Handler
	rc           syscall.RawConn // the socket, registered with the poller (nil: not, and no write without blocking)

	// Owned by the reader (one goroutine at a time).
	ws *websocket.Conn
	br *bufio.Reader // what gorilla parses frames from (nil: unknown; then no poller)
	fd int           // the descriptor registered with the poller; -1: none

	// Owned by the writer.
	rest    []byte  // what TryWrite left for Flush, in *restBuf
	restBuf *[]byte // the pooled buffer rest is in
	werr    error   // the first failed write: no write after it

	mu        sync.Mutex
	pong      string // payload of the last ping, to answer
	pongDue   bool   // a pong is to be written
	peerClose int    // the close code the client sent (0: it sent no close frame)
	parked    bool   // no goroutine reads; the poller starts one when data comes
	closed    bool   // Close or Refuse closed the socket
}

// upgrader holds no write buffer per connection: a Conn frames its writes
// itself, and gorilla's own writes (its protocol-error close) borrow a
// pooled buffer. ReadBufferSize 0 makes gorilla parse from the
// bufio.Reader the hijacker hands it.
var upgrader = websocket.Upgrader{
	WriteBufferPool: &sync.Pool{},
}

// hijacker gives gorilla a read buffer of the configured size that the Conn
// keeps, so its reader knows whether a frame is already buffered (gorilla
// reuses a hijacked bufio.Reader larger than 256 bytes).
type hijacker struct {
	http.ResponseWriter
	size int
	br   *bufio.Reader
}

// Hijack implements http.Hijacker.
func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil || brw.Reader.Buffered() > 0 {
		return nc, brw, err // gorilla refuses a client that sent data before the 101
	}
	h.br = bufio.NewReaderSize(nc, h.size)
	return nc, bufio.NewReadWriter(h.br, brw.Writer), nil
}

// IsUpgrade reports whether r asks for a websocket upgrade.
func IsUpgrade(r *http.Request) bool { return websocket.IsWebSocketUpgrade(r) }

// Upgrade completes the websocket handshake of r. On failure the client
// has been answered (400, 403) and the error says why. The Conn reads
// nothing until Start; Refuse closes one that is not to be started.
func Upgrade(w http.ResponseWriter, r *http.Request, o Options) (*Conn, error) {
	o.ReadBufferBytes = max(o.ReadBufferBytes, DefaultReadBufferBytes)
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	up := upgrader
	up.CheckOrigin = o.CheckOrigin
	hj := &hijacker{ResponseWriter: w, size: o.ReadBufferBytes}
	ws, err := up.Upgrade(hj, r, nil)
	if err != nil {
		return nil, fmt.Errorf("wsengine: upgrade: %w", err)
	}
	ws.SetReadLimit(int64(o.MaxMessageBytes))
	c := &Conn{nc: ws.NetConn(), writeTimeout: o.WriteTimeout, ws: ws, br: hj.br, fd: -1}
	ws.SetPingHandler(c.onPing)
	ws.SetCloseHandler(c.onClose)
	return c, nil
}

// Start begins reading: frames go to h. The socket joins the poller,
// parked; where it cannot, a goroutine waits in its read.
func (c *Conn) Start(h Handler) {
	c.h = h
	c.mu.Lock()
	c.parked = true // the poller wakes a reader
	c.mu.Unlock()
	if c.br == nil || c.register() != nil {
		c.mu.Lock()
		c.parked = false
		c.mu.Unlock()
		go c.readBlocking()
	}
}

// onPing keeps the pong for the writer (gorilla's default would write it
// from the reader).
func (c *Conn) onPing(data string) error {
	c.mu.Lock()
	c.pong, c.pongDue = data, true
	c.mu.Unlock()
	c.h.ControlDue()
	return nil
}

// onClose remembers the client's close code; Close echoes it.
func (c *Conn) onClose(code int, _ string) error {
	c.mu.Lock()
	c.peerClose = code
	c.mu.Unlock()
	return nil
}

// appendPong appends the pong due, if any, and clears it.
func (c *Conn) appendPong(buf []byte) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.pongDue {
		return buf
	}
	buf = appendFrame(buf, websocket.PongMessage, c.pong)
	c.pong, c.pongDue = "", false
	return buf
}

// TryWrite writes packets, each as one text frame, after the pong due if
// any, as far as the socket takes them at once: it never blocks. It reports
// whether all was written; if not, it keeps the rest, and the next call
// must be Flush. After a failed write it writes nothing and returns that
// error.
func (c *Conn) TryWrite(packets []string) (bool, error) {
	if c.werr != nil {
		return false, c.werr
	}
	bp := frameBufs.Get().(*[]byte)
	buf := c.appendPong((*bp)[:0])
	for _, p := range packets {
		buf = appendFrame(buf, websocket.TextMessage, p)
	}
	n := 0
	if c.rc != nil {
		var err error
		if n, err = c.tryWrite(buf); err != nil {
			putFrameBuf(bp, buf)
			return false, c.fail(err)
		}
	}
	if n == len(buf) {
		putFrameBuf(bp, buf)
		return true, nil
	}
	*bp = buf
	c.rest, c.restBuf = buf[n:], bp
	return false, nil
}

// Flush writes what TryWrite left, waiting for the socket at most
// Options.WriteTimeout.
func (c *Conn) Flush() error {
	if c.restBuf == nil {
		return c.werr
	}
	err := c.werr
	if err == nil {
		err = c.writeAll(c.rest)
	}
	putFrameBuf(c.restBuf, *c.restBuf)
	c.rest, c.restBuf = nil, nil
	if err != nil {
		return c.fail(err)
	}
	return nil
}

// Write writes packets, each as one text frame, after the pong due if any,
// in one write per maxWriteChunk bytes, each waiting for the socket at most
// Options.WriteTimeout. After a failed write it writes nothing and returns
// that error.
func (c *Conn) Write(packets []string) error {
	if err := c.Flush(); err != nil {
		return err
	}
	bp := frameBufs.Get().(*[]byte)
	buf := c.appendPong((*bp)[:0])
	defer func() { putFrameBuf(bp, buf) }()
	for _, p := range packets {
		buf = appendFrame(buf, websocket.TextMessage, p)
		if len(buf) >= maxWriteChunk {
			if err := c.writeAll(buf); err != nil {
				return c.fail(err)
			}
			buf = buf[:0]
		}
	}
	if len(buf) > 0 {
		if err := c.writeAll(buf); err != nil {
			return c.fail(err)
		}
	}
	return nil
}

// fail records the first failed write and returns it.
func (c *Conn) fail(err error) error {
	if c.werr == nil {
		c.werr = fmt.Errorf("wsengine: write: %w", err)
	}
	return c.werr
}

// Close ends the connection: unless a write failed, it writes what TryWrite
// left and, if the client sent a close frame, the echo of its code (as
// gorilla's default close handler does); then it closes the socket, which
// ends a reader waiting in its read. A connection closed here without the
// client's close frame gets no close frame: the 0.9 client under Node.js
// (ws 0.4) throws when it emits while its socket is closing. If no reader
// runs, Close reports the end of reads itself (Handler.ReadsEnded with
// net.ErrClosed) before it returns.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	code, parked := c.peerClose, c.parked
	c.parked = false
	c.mu.Unlock()
	if err := c.Flush(); err == nil && code != 0 {
		var payload string
		if code != websocket.CloseNoStatusReceived {
			payload = string(websocket.FormatCloseMessage(code, ""))
		}
		_ = c.writeAll(appendFrame(nil, websocket.CloseMessage, payload))
	}
	err := c.nc.Close()
	if parked {
		c.endReads(net.ErrClosed) // no reader will: the socket left the poller
	}
	if err != nil {
		return fmt.Errorf("wsengine: close: %w", err)
	}
	return nil
}

// Refuse answers a client whose connection is not to be started: packet
// (unless "") as a text frame, then a close frame with code 1000, in one
// write that waits at most Options.WriteTimeout; then it closes the
// connection. Call it instead of Start.
func (c *Conn) Refuse(packet string) {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	var buf []byte
	if packet != "" {
		buf = appendFrame(buf, websocket.TextMessage, packet)
	}
	buf = appendFrame(buf, websocket.CloseMessage, string(websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")))
	_ = c.writeAll(buf)
	_ = c.nc.Close()
}

// tryWrite writes what the socket takes at once, without blocking: n is
// what was written; err is nil when the socket's buffer was full.
func (c *Conn) tryWrite(buf []byte) (n int, err error) {
	cerr := c.rc.Write(func(fd uintptr) bool {
		for n < len(buf) {
			m, werr := syscall.Write(int(fd), buf[n:])
			if werr == syscall.EINTR {
				continue
			}
			if werr == syscall.EAGAIN {
				break
			}
			if werr != nil {
				err = werr
				break
			}
			n += m
		}
		return true // never wait for the socket
	})
	if err == nil {
		err = cerr
	}
	return n, err
}

// writeAll writes buf, waiting for the socket at most the write timeout;
// it tries a write that does not block first, which needs no deadline.
func (c *Conn) writeAll(buf []byte) error {
	if c.rc != nil {
		n, err := c.tryWrite(buf)
		if err != nil || n == len(buf) {
			return err
		}
		buf = buf[n:]
	}
	if err := c.nc.SetWriteDeadline(time.Now().Add(c.writeTimeout)); err != nil {
		return err
	}
	if _, err := c.nc.Write(buf); err != nil {
		return err
	}
	// A deadline left behind would fail the next write that does not block.
	return c.nc.SetWriteDeadline(time.Time{})
}
