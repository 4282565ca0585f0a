//go:build linux

package wsengine

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// poller wakes websocket readers when their socket has something to read:
// one epoll instance and one goroutine for the whole process, so an idle
// connection has no goroutine (and no goroutine stack). Sockets are
// registered one-shot, level-triggered: a reader that read a burst re-arms
// its socket, and data that came meanwhile wakes it again at once.
//
// A socket leaves the epoll set when it is closed. An event already taken
// for a closed socket whose number was reused finds the new connection not
// parked, or parked with nothing to read yet (its reader then waits in its
// read, like a classic reader, until data comes).
type poller struct {
	epfd int
	mu   sync.Mutex
	byFD []*Conn // by file descriptor (descriptors are small, dense numbers)
}

var (
	pollerOnce sync.Once
	thePoller  *poller
	errPoller  error
)

// pollEvents is what a parked socket waits for.
const pollEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

func getPoller() (*poller, error) {
	pollerOnce.Do(func() {
		fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			errPoller = fmt.Errorf("wsengine: epoll: %w", err)
			return
		}
		thePoller = &poller{epfd: fd}
		go thePoller.wakeReaders()
	})
	return thePoller, errPoller
}

func (p *poller) wakeReaders() {
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil {
			if !errors.Is(err, unix.EINTR) {
				time.Sleep(10 * time.Millisecond) // not expected; do not spin
			}
			continue
		}
		p.mu.Lock()
		for _, ev := range events[:n] {
			if fd := int(ev.Fd); fd < len(p.byFD) && p.byFD[fd] != nil {
				go p.byFD[fd].readWake()
			}
		}
		p.mu.Unlock()
	}
}

// register adds the connection's socket to the poller, armed; the
// connection must be parked already. It fails where the socket has no file
// descriptor.
func (c *Conn) register() error {
	p, err := getPoller()
	if err != nil {
		return err
	}
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return fmt.Errorf("wsengine: %T has no file descriptor", c.nc)
	}
	if c.rc, err = sc.SyscallConn(); err != nil {
		return fmt.Errorf("wsengine: %w", err)
	}
	var cerr error
	err = c.rc.Control(func(fd uintptr) {
		p.mu.Lock()
		if int(fd) >= len(p.byFD) {
			p.byFD = append(p.byFD, make([]*Conn, int(fd)+1-len(p.byFD))...)
		}
		p.byFD[fd] = c
		p.mu.Unlock()
		c.fd = int(fd)
		ev := unix.EpollEvent{Events: pollEvents, Fd: int32(fd)}
		cerr = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		c.unregister()
		return fmt.Errorf("wsengine: epoll: %w", err)
	}
	return nil
}

// arm re-enables the connection's one-shot registration. The caller holds
// c.mu and has seen the connection not closed, so the socket is open.
func (c *Conn) arm() error {
	var cerr error
	err := c.rc.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: pollEvents, Fd: int32(fd)}
		cerr = unix.EpollCtl(thePoller.epfd, unix.EPOLL_CTL_MOD, int(fd), &ev)
	})
	if err != nil {
		return err
	}
	return cerr
}

// unregister forgets the connection's socket (closing it leaves the epoll
// set).
func (c *Conn) unregister() {
	if c.fd < 0 || thePoller == nil {
		return
	}
	p := thePoller
	p.mu.Lock()
	if c.fd < len(p.byFD) && p.byFD[c.fd] == c {
		p.byFD[c.fd] = nil
	}
	p.mu.Unlock()
}
