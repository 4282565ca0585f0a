// Package sioclient is a small Socket.IO 0.9 client for tests and the load
// tool: websocket or xhr-polling, with each HTTP request sent to the next of
// several base URLs in turn, as a round-robin load balancer would.
//
// A connected websocket client costs a few KiB (a reader goroutine, a 1 KiB
// read buffer, no write buffer while idle, an inbound queue that is empty
// until packets come), so a load test can hold tens of thousands; spread
// them over several local source addresses (Options.LocalIP) when they
// would exhaust one address's ephemeral ports.
package sioclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/realtime/realtime/pkg/protocol"
)

// maxInbound bounds the packets queued for Next; beyond it the client
// fails ("inbound queue full").
const maxInbound = 4096

// Options tune DialOptions.
type Options struct {
	// Transport is "websocket" or "xhr-polling". Default: "websocket".
	Transport string
	// LocalIP is the source address of the client's connections (e.g. one
	// of 127.0.0.1-127.0.0.20 to spread many clients over several
	// addresses' ephemeral ports). Default: nil, the system's choice.
	LocalIP net.IP
}

var (
	transportsMu sync.Mutex
	transports   = map[string]*http.Transport{} // by local IP ("" for none)
	wsBuffers    sync.Pool                      // websocket write buffers, taken only while writing
)

// httpTransport returns the transport shared by every client with the same
// local IP: a load test opens many sessions to few hosts, so it keeps plenty
// of idle connections per host.
func httpTransport(local net.IP) *http.Transport {
	key := ""
	if local != nil {
		key = local.String()
	}
	transportsMu.Lock()
	defer transportsMu.Unlock()
	if t := transports[key]; t != nil {
		return t
	}
	t := &http.Transport{
		Proxy:               nil,
		DialContext:         dialer(local).DialContext,
		MaxIdleConns:        4096,
		MaxIdleConnsPerHost: 4096,
		IdleConnTimeout:     90 * time.Second,
	}
	transports[key] = t
	return t
}

func dialer(local net.IP) *net.Dialer {
	d := &net.Dialer{Timeout: 30 * time.Second}
	if local != nil {
		d.LocalAddr = &net.TCPAddr{IP: local}
	}
	return d
}

// ErrClosed is returned after the connection ended.
var ErrClosed = errors.New("sioclient: closed")

// Client is one Socket.IO 0.9 session.
type Client struct {
	SID       string
	Transport string

	urls    []string
	local   net.IP
	next    atomic.Uint64
	http    *http.Client
	ws      *websocket.Conn
	wsMu    sync.Mutex
	postMu  sync.Mutex
	inMu    sync.Mutex
	in      []protocol.Packet // for Next; nil when empty
	inReady chan struct{}     // signalled when in grows
	hbs     atomic.Int64      // heartbeats received
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
	return DialOptions(ctx, Options{Transport: transport}, urls...)
}

// DialOptions is Dial with options.
func DialOptions(ctx context.Context, opts Options, urls ...string) (*Client, error) {
	transport := opts.Transport
	if transport == "" {
		transport = "websocket"
	}
	c := &Client{
		Transport: transport, urls: urls, local: opts.LocalIP,
		http:    &http.Client{Timeout: 60 * time.Second, Transport: httpTransport(opts.LocalIP)},
		inReady: make(chan struct{}, 1),
		done:    make(chan struct{}),
		acks:    map[string]chan json.RawMessage{},
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
		d := websocket.Dialer{
			NetDialContext:   dialer(c.local).DialContext,
			HandshakeTimeout: 30 * time.Second,
			ReadBufferSize:   1024,
			WriteBufferPool:  &wsBuffers,
		}
		ws, _, err := d.DialContext(ctx, u, nil)
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
		c.hbs.Add(1)
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
			c.push(p, false)
			c.fail(errors.New("sioclient: disconnected by the server"))
			return
		}
	}
	c.push(p, true)
}

// push queues p for Next; bounded, beyond maxInbound the client fails.
func (c *Client) push(p protocol.Packet, bounded bool) {
	c.inMu.Lock()
	if bounded && len(c.in) >= maxInbound {
		c.inMu.Unlock()
		c.fail(errors.New("sioclient: inbound queue full"))
		return
	}
	c.in = append(c.in, p)
	c.inMu.Unlock()
	select {
	case c.inReady <- struct{}{}:
	default:
	}
}

// pop takes the oldest queued packet.
func (c *Client) pop() (protocol.Packet, bool) {
	c.inMu.Lock()
	defer c.inMu.Unlock()
	if len(c.in) == 0 {
		return protocol.Packet{}, false
	}
	p := c.in[0]
	c.in[0] = protocol.Packet{}
	c.in = c.in[1:]
	if len(c.in) == 0 {
		c.in = nil
	}
	return p, true
}

// Heartbeats returns how many heartbeats the server sent (each is answered).
func (c *Client) Heartbeats() int64 { return c.hbs.Load() }

// Next returns the next packet that is not a heartbeat, noop or awaited ack.
func (c *Client) Next(ctx context.Context) (protocol.Packet, error) {
	for {
		if p, ok := c.pop(); ok {
			return p, nil
		}
		select {
		case <-c.inReady:
		case <-c.done:
			if p, ok := c.pop(); ok {
				return p, nil
			}
			return protocol.Packet{}, c.err
		case <-ctx.Done():
			return protocol.Packet{}, ctx.Err()
		}
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
