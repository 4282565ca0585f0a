// Package sioclient is a small Socket.IO 0.9 client for tests and the load
// tool: websocket or xhr-polling, with each HTTP request sent to the next of
// several base URLs in turn, as a round-robin load balancer would.
package sioclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/realtime/realtime/pkg/protocol"
)

// httpTransport is shared by every client: a load test opens many sessions
// to few hosts, so keep plenty of idle connections per host.
var httpTransport = &http.Transport{
	Proxy:               nil,
	MaxIdleConns:        4096,
	MaxIdleConnsPerHost: 4096,
	IdleConnTimeout:     90 * time.Second,
}

// ErrClosed is returned after the connection ended.
var ErrClosed = errors.New("sioclient: closed")

// Client is one Socket.IO 0.9 session.
type Client struct {
	SID       string
	Transport string

	urls    []string
	next    atomic.Uint64
	http    *http.Client
	ws      *websocket.Conn
	wsMu    sync.Mutex
	postMu  sync.Mutex
	in      chan protocol.Packet
	done    chan struct{}
	once    sync.Once
	err     error
	ackSeq  atomic.Uint64
	acksMu  sync.Mutex
	acks    map[string]chan json.RawMessage // "<ns> <id>"
	lastT   atomic.Int64
	closing atomic.Bool
}

// Dial handshakes and opens transport ("websocket" or "xhr-polling") on the
// first URL (later requests rotate over urls), returning once 1:: arrived.
func Dial(ctx context.Context, transport string, urls ...string) (*Client, error) {
	c := &Client{
		Transport: transport, urls: urls,
		http: &http.Client{Timeout: 60 * time.Second, Transport: httpTransport},
		in:   make(chan protocol.Packet, 4096),
		done: make(chan struct{}),
		acks: map[string]chan json.RawMessage{},
	}
	body, err := c.get(ctx, "/socket.io/1/?t="+c.t())
	if err != nil {
		return nil, fmt.Errorf("sioclient: handshake: %w", err)
	}
	hs, err := protocol.ParseHandshake(body)
	if err != nil {
		return nil, fmt.Errorf("sioclient: handshake %q: %w", body, err)
	}
	c.SID = hs.SID
	switch transport {
	case "websocket":
		u := "ws" + strings.TrimPrefix(c.url(), "http") + "/socket.io/1/websocket/" + c.SID
		ws, _, err := websocket.DefaultDialer.DialContext(ctx, u, nil)
		if err != nil {
			return nil, fmt.Errorf("sioclient: websocket: %w", err)
		}
		c.ws = ws
		go c.readWS()
	case "xhr-polling":
		go c.poll()
	default:
		return nil, fmt.Errorf("sioclient: transport %q not supported", transport)
	}
	p, err := c.Next(ctx)
	if err != nil {
		c.Close()
		return nil, err
	}
	if p.Type != protocol.Connect {
		c.Close()
		return nil, fmt.Errorf("sioclient: first packet %q is not the connect packet", p.String())
	}
	return c, nil
}

func (c *Client) url() string {
	return c.urls[int(c.next.Add(1)-1)%len(c.urls)]
}

// t returns a cache-buster that increases with every request, like the
// client's millisecond timestamp but never repeating.
func (c *Client) t() string {
	for {
		now, last := time.Now().UnixMilli(), c.lastT.Load()
		if now <= last {
			now = last + 1
		}
		if c.lastT.CompareAndSwap(last, now) {
			return strconv.FormatInt(now, 10)
		}
	}
}

func (c *Client) get(ctx context.Context, path string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url()+path, nil)
	if err != nil {
		return "", err
	}
	return c.do(req)
}

func (c *Client) do(req *http.Request) (string, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s %s: status %d: %s", req.Method, req.URL.Path, resp.StatusCode, b)
	}
	return string(b), nil
}

func (c *Client) fail(err error) {
	c.once.Do(func() {
		c.err = err
		close(c.done)
		if c.ws != nil {
			_ = c.ws.Close()
		}
	})
}

// Err returns why the client closed (nil while open).
func (c *Client) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// Done is closed when the connection ends.
func (c *Client) Done() <-chan struct{} { return c.done }

// Close ends the session (0:: then the transport).
func (c *Client) Close() {
	if c.closing.Swap(true) {
		return
	}
	select {
	case <-c.done:
		return
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.Send(ctx, protocol.Packet{Type: protocol.Disconnect})
	c.fail(ErrClosed)
}

// Drop closes the transport without 0:: (like a network failure).
func (c *Client) Drop() { c.closing.Store(true); c.fail(ErrClosed) }

func (c *Client) readWS() {
	for {
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			c.fail(fmt.Errorf("sioclient: websocket read: %w", err))
			return
		}
		p, err := protocol.Decode(b)
		if err != nil {
			c.fail(fmt.Errorf("sioclient: bad packet %q: %w", b, err))
			return
		}
		p.Data = append([]byte(nil), p.Data...)
		c.deliver(p)
	}
}

func (c *Client) poll() {
	for {
		select {
		case <-c.done:
			return
		default:
		}
		body, err := c.get(context.Background(), "/socket.io/1/xhr-polling/"+c.SID+"?t="+c.t())
		if err != nil {
			if !c.closing.Load() {
				c.fail(fmt.Errorf("sioclient: poll: %w", err))
			}
			return
		}
		err = protocol.DecodePayload([]byte(body), 0, func(b []byte) error {
			p, err := protocol.Decode(b)
			if err != nil {
				return err
			}
			p.Data = append([]byte(nil), p.Data...)
			c.deliver(p)
			return nil
		})
		if err != nil {
			c.fail(fmt.Errorf("sioclient: bad payload %q: %w", body, err))
			return
		}
	}
}

// deliver handles heartbeats and acks itself and queues the rest.
func (c *Client) deliver(p protocol.Packet) {
	switch p.Type {
	case protocol.Heartbeat:
		go func() { _ = c.Send(context.Background(), protocol.Packet{Type: protocol.Heartbeat}) }()
		return
	case protocol.Noop:
		return
	case protocol.Ack:
		id, args, _, err := protocol.ParseAck(p.Data)
		if err == nil {
			c.acksMu.Lock()
			ch := c.acks[p.Endpoint+" "+strconv.FormatUint(id, 10)]
			delete(c.acks, p.Endpoint+" "+strconv.FormatUint(id, 10))
			c.acksMu.Unlock()
			if ch != nil {
				if args == nil {
					args = []byte("[]")
				}
				ch <- append(json.RawMessage(nil), args...)
				return
			}
		}
	case protocol.Error:
		if string(p.Data) == "1+0" {
			c.fail(errors.New("sioclient: client not handshaken"))
			return
		}
	case protocol.Disconnect:
		if p.Endpoint == "" {
			c.in <- p
			c.fail(errors.New("sioclient: disconnected by the server"))
			return
		}
	}
	select {
	case c.in <- p:
	default:
		c.fail(errors.New("sioclient: inbound queue full"))
	}
}

// Next returns the next packet that is not a heartbeat, noop or awaited ack.
func (c *Client) Next(ctx context.Context) (protocol.Packet, error) {
	select {
	case p := <-c.in:
		return p, nil
	default:
	}
	select {
	case p := <-c.in:
		return p, nil
	case <-c.done:
		select {
		case p := <-c.in:
			return p, nil
		default:
		}
		return protocol.Packet{}, c.err
	case <-ctx.Done():
		return protocol.Packet{}, ctx.Err()
	}
}

// NextEvent returns the next event named name (other packets are skipped).
func (c *Client) NextEvent(ctx context.Context, ns, name string) (json.RawMessage, error) {
	for {
		p, err := c.Next(ctx)
		if err != nil {
			return nil, err
		}
		if p.Type != protocol.Event || p.Endpoint != ns {
			continue
		}
		n, args, err := protocol.ParseEvent(p.Data)
		if err != nil {
			return nil, err
		}
		if n == name {
			return args, nil
		}
	}
}

// Send writes one packet.
func (c *Client) Send(ctx context.Context, p protocol.Packet) error {
	select {
	case <-c.done:
		return ErrClosed
	default:
	}
	b := protocol.Encode(p)
	if c.ws != nil {
		c.wsMu.Lock()
		defer c.wsMu.Unlock()
		_ = c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
		return c.ws.WriteMessage(websocket.TextMessage, b)
	}
	c.postMu.Lock() // the 0.9 client sends one POST at a time, in order
	defer c.postMu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		c.url()+"/socket.io/1/xhr-polling/"+c.SID+"?t="+c.t(), strings.NewReader(string(b)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	body, err := c.do(req)
	if err != nil {
		return err
	}
	if body != "1" {
		return fmt.Errorf("sioclient: POST answered %q", body)
	}
	return nil
}

// Connect joins namespace ns and waits for its echo.
func (c *Client) Connect(ctx context.Context, ns string) error {
	if err := c.Send(ctx, protocol.Packet{Type: protocol.Connect, Endpoint: ns}); err != nil {
		return err
	}
	for {
		p, err := c.Next(ctx)
		if err != nil {
			return err
		}
		if p.Type == protocol.Connect && p.Endpoint == ns {
			return nil
		}
		if p.Type == protocol.Error && p.Endpoint == ns {
			return fmt.Errorf("sioclient: namespace %s refused: %s", ns, p.Data)
		}
	}
}

func marshal(args []any) ([]byte, error) {
	if len(args) == 0 {
		return nil, nil
	}
	return json.Marshal(args)
}

// Emit sends event name with args to namespace ns.
func (c *Client) Emit(ctx context.Context, ns, name string, args ...any) error {
	a, err := marshal(args)
	if err != nil {
		return err
	}
	return c.Send(ctx, protocol.Packet{Type: protocol.Event, Endpoint: ns, Data: protocol.AppendEvent(nil, name, a)})
}

// EmitAck sends event name with args asking for a data ack and waits for it.
func (c *Client) EmitAck(ctx context.Context, ns, name string, args ...any) (json.RawMessage, error) {
	a, err := marshal(args)
	if err != nil {
		return nil, err
	}
	id := c.ackSeq.Add(1)
	ch := make(chan json.RawMessage, 1)
	key := ns + " " + strconv.FormatUint(id, 10)
	c.acksMu.Lock()
	c.acks[key] = ch
	c.acksMu.Unlock()
	p := protocol.Packet{Type: protocol.Event, ID: id, HasID: true, AckData: true, Endpoint: ns, Data: protocol.AppendEvent(nil, name, a)}
	if err := c.Send(ctx, p); err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		return r, nil
	case <-c.done:
		return nil, c.err
	case <-ctx.Done():
		c.acksMu.Lock()
		delete(c.acks, key)
		c.acksMu.Unlock()
		return nil, ctx.Err()
	}
}

// Ack answers a server event that asked for an ack.
func (c *Client) Ack(ctx context.Context, ns string, id uint64, args ...any) error {
	a, err := json.Marshal(args)
	if err != nil {
		return err
	}
	return c.Send(ctx, protocol.Packet{Type: protocol.Ack, Endpoint: ns, Data: protocol.AppendAck(nil, id, a, true)})
}
