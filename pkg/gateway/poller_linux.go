//go:build linux

package gateway

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
// websocket has no goroutine (and no goroutine stack). Sockets are
// registered one-shot, level-triggered: a reader that read a burst re-arms
// its socket, and data that came meanwhile wakes it again at once.
//
// A socket leaves the epoll set when it is closed. An event already taken
// for a closed socket whose number was reused finds the new stream not
// parked, or parked with nothing to read yet (its reader then waits in its
// read, like a classic reader, until data comes).
type poller struct {
	epfd int
	mu   sync.Mutex
	byFD []*streamConn // by file descriptor (descriptors are small, dense numbers)
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
			errPoller = fmt.Errorf("gateway: epoll: %w", err)
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

// register adds the stream's socket to the poller, armed; the stream must
// be parked already. It fails where the socket has no file descriptor.
func (s *streamConn) register() error {
	p, err := getPoller()
	if err != nil {
		return err
	}
	sc, ok := s.nc.(syscall.Conn)
	if !ok {
		return fmt.Errorf("gateway: %T has no file descriptor", s.nc)
	}
	if s.rc, err = sc.SyscallConn(); err != nil {
		return err
	}
	var cerr error
	err = s.rc.Control(func(fd uintptr) {
		p.mu.Lock()
		if int(fd) >= len(p.byFD) {
			p.byFD = append(p.byFD, make([]*streamConn, int(fd)+1-len(p.byFD))...)
		}
		p.byFD[fd] = s
		p.mu.Unlock()
		s.fd = int(fd)
		ev := unix.EpollEvent{Events: pollEvents, Fd: int32(fd)}
		cerr = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		s.unregister()
	}
	return err
}

// arm re-enables the stream's one-shot registration. The caller holds s.mu
// and has seen the stream not stopped, so the socket is open.
func (s *streamConn) arm() error {
	var cerr error
	err := s.rc.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: pollEvents, Fd: int32(fd)}
		cerr = unix.EpollCtl(thePoller.epfd, unix.EPOLL_CTL_MOD, int(fd), &ev)
	})
	if err != nil {
		return err
	}
	return cerr
}

// unregister forgets the stream's socket (closing it left the epoll set).
func (s *streamConn) unregister() {
	if s.fd < 0 || thePoller == nil {
		return
	}
	p := thePoller
	p.mu.Lock()
	if s.fd < len(p.byFD) && p.byFD[s.fd] == s {
		p.byFD[s.fd] = nil
	}
	p.mu.Unlock()
}
