package wsengine

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"

	"github.com/gorilla/websocket"
)

// errStopped ends a burst whose Handler.Frame asked to stop reading.
var errStopped = errors.New("wsengine: reading stopped by the handler")

// readWake is started by the poller when a parked connection's socket has
// something to read: it reads a burst, then re-arms the socket and parks
// again, or ends the reads.
func (c *Conn) readWake() {
	c.mu.Lock()
	if !c.parked {
		c.mu.Unlock()
		return // closed meanwhile, or a stale event
	}
	c.parked = false
	c.mu.Unlock()
	if err := c.readBurst(); err != nil {
		c.endReads(err)
		return
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.endReads(net.ErrClosed)
		return
	}
	// Under c.mu with closed false, the socket is open.
	if err := c.arm(); err != nil {
		c.mu.Unlock()
		c.endReads(err)
		return
	}
	c.parked = true
	c.mu.Unlock()
}

// readBlocking is the reader where the poller is not available: a
// goroutine that waits in its read for the connection's life.
func (c *Conn) readBlocking() {
	for {
		if err := c.readBurst(); err != nil {
			c.endReads(err)
			return
		}
	}
}

// endReads leaves the poller and reports the end of reads once.
func (c *Conn) endReads(err error) {
	c.unregister()
	if errors.Is(err, errStopped) {
		err = nil
	}
	c.h.ReadsEnded(err)
}

// readBurst reads data frames until none is buffered and hands each to the
// handler; a nil error means reading goes on. It sets no read deadline: a
// client that stops in the middle of a frame is the caller's to end (the
// gateway's heartbeat timeout closes the connection under the waiting
// read; a deadline per frame would cost a timer update per packet).
func (c *Conn) readBurst() error {
	for {
		typ, r, err := c.ws.NextReader()
		if err != nil {
			return readError(err)
		}
		bp := readBufs.Get().(*[]byte)
		data, err := readAll(r, (*bp)[:0])
		if err != nil {
			return readError(err)
		}
		more := c.h.Frame(typ == websocket.TextMessage, data) // retains nothing of data
		if cap(data) <= maxWriteChunk {
			*bp = data[:0]
			readBufs.Put(bp)
		}
		if !more {
			return errStopped
		}
		if c.br == nil || c.br.Buffered() == 0 {
			return nil
		}
	}
}

// readError names a frame over the read limit ErrTooLarge.
func readError(err error) error {
	var closed *websocket.CloseError
	var netErr net.Error
	switch {
	case errors.Is(err, websocket.ErrReadLimit):
		return ErrTooLarge
	case errors.As(err, &closed), errors.As(err, &netErr), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return err
	case strings.HasPrefix(err.Error(), "websocket: "):
		// gorilla/websocket's protocol errors have no type of their own;
		// it answered each with close 1002.
		return fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	return err
}

// readBufs recycles the buffers frames are read into (a heartbeat answer
// would otherwise leave a buffer of garbage per connection and interval).
var readBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// readAll reads r to its end, appending to b.
func readAll(r io.Reader, b []byte) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}
