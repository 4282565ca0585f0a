package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/realtime/realtime/pkg/bus"
	"github.com/realtime/realtime/pkg/session"
	"github.com/realtime/realtime/pkg/worker"
)

// Bridge defaults (Config), also cmd/worker's flag defaults.
const (
	// DefaultTimeout is Config.Timeout's default.
	DefaultTimeout = 10 * time.Second
	// DefaultConcurrency is Config.Concurrency's default.
	DefaultConcurrency = 8
	// DefaultMaxBatch is Config.MaxBatch's default.
	DefaultMaxBatch = 100
	// MaxAnswerBytes bounds an answer's body.
	MaxAnswerBytes = 16 << 20
)

// Errors the bridge's handler fails a signal with (then retried, and
// dead-lettered after the worker's max attempts).
var (
	// ErrStatus: the app answered with a status other than 2xx.
	ErrStatus = errors.New("bridge: app answered with an error status")
	// ErrBadAnswer: the answer is not a version-1 answer, or an effect in
	// it cannot be applied (unknown op, bad room, args not an array, …).
	ErrBadAnswer = errors.New("bridge: bad answer")
	// ErrSignalFailed: the app answered the signal with "error".
	ErrSignalFailed = errors.New("bridge: the app failed the signal")
	// ErrNoSecret is returned by New without a secret.
	ErrNoSecret = errors.New("bridge: a secret is required to sign requests")
	// ErrBadEndpoint is returned by New for an endpoint that is not an
	// http or https URL.
	ErrBadEndpoint = errors.New("bridge: the endpoint must be an http:// or https:// URL")
)

// Config configures a Bridge. Zero fields take the documented defaults.
type Config struct {
	// Endpoint is the app's URL; every request is a POST to it. Required.
	Endpoint string
	// Secret signs every request (see Sign). Required.
	Secret []byte
	// Timeout bounds each request, answer included. Default:
	// DefaultTimeout (10s).
	Timeout time.Duration
	// Concurrency is how many requests (each of one partition's signals)
	// may be in flight at once. Default: DefaultConcurrency (8).
	Concurrency int
	// MaxBatch is the most signals one request carries. Default:
	// DefaultMaxBatch (100).
	MaxBatch int
	// Client sends the requests. Default: a client of its own.
	Client *http.Client
	// Logger receives the bridge's logs. Default: slog.Default().
	Logger *slog.Logger
	// Metrics, if set, receives the bridge's measurements.
	Metrics *Metrics
	// Namespaces are the namespaces whose signals the app handles ("" the
	// default one; cmd/worker's -http-namespaces); the others are other
	// apps', left alone (worker.Worker.OnBatch). Default: every namespace,
	// so the bridge must then be the cluster's only app.
	Namespaces []string
}

// Bridge hands the signals a worker consumes to an HTTP app and commits the
// effects it answers with (a worker.BatchHandler; see Register).
type Bridge struct {
	cfg     Config
	log     *slog.Logger
	metrics *Metrics
	sem     chan struct{}

	mu   sync.Mutex
	sent map[string]int // signal id → times sent, until handled

	badLog rate.Sometimes
	// rejectLog: effects refused by a cluster limit, logged at most once
	// per 10 s.
	rejectLog rate.Sometimes
	// authLog: 401 answers, logged at most once a minute.
	authLog rate.Sometimes
	// unavailableLog: answers taken as the app being unavailable (502,
	// 503, 504), logged at most once a minute.
	unavailableLog rate.Sometimes
	// lastOK is when the latest 2xx answer of the app arrived (unix ns).
	lastOK atomic.Int64

	em *worker.Emitter // set by Register: reads the sessions' identities at once
}

// maxTracked bounds Bridge.sent (signals dead-lettered are never handled).
const maxTracked = 100_000

// New returns a bridge, or ErrNoSecret or ErrBadEndpoint.
func New(cfg Config) (*Bridge, error) {
	if len(cfg.Secret) == 0 {
		return nil, ErrNoSecret
	}
	if u, err := url.Parse(cfg.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: %q", ErrBadEndpoint, cfg.Endpoint)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.Client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = cfg.Concurrency
		cfg.Client = &http.Client{Transport: tr}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	return &Bridge{
		cfg: cfg, log: cfg.Logger.With("endpoint", cfg.Endpoint), metrics: cfg.Metrics,
		sem: make(chan struct{}, cfg.Concurrency), sent: map[string]int{},
		badLog:         rate.Sometimes{First: 1, Interval: 10 * time.Second},
		rejectLog:      rate.Sometimes{First: 1, Interval: 10 * time.Second},
		authLog:        rate.Sometimes{First: 1, Interval: time.Minute},
		unavailableLog: rate.Sometimes{First: 1, Interval: time.Minute},
	}, nil
}

// Register makes b handle every signal w consumes of Config.Namespaces.
func (b *Bridge) Register(w *worker.Worker) {
	b.em = w.Emitter
	w.OnBatch(b.Handle, b.cfg.Namespaces...)
}

// Handle is the worker.BatchHandler: it posts up to MaxBatch of the calls
// in one request and applies the answer. A failed request (transport error,
// timeout, non-2xx status, bad answer) fails the first call; a result with
// "error" fails its call after the ones before it are handled.
func (b *Bridge) Handle(ctx context.Context, calls []*worker.Call) (int, error) {
	calls = calls[:min(len(calls), b.cfg.MaxBatch)]
	req := Request{V: Version, Signals: make([]Signal, 0, len(calls))}
	var send []*worker.Call // the calls in the request (invalid input is not sent)
	var idx []int           // their index in calls
	hs, err := b.identities(ctx, calls)
	if err != nil {
		return 0, err
	}
	for i, c := range calls {
		s, ok := b.signal(c, hs)
		if !ok {
			continue
		}
		req.Signals = append(req.Signals, s)
		send, idx = append(send, c), append(idx, i)
	}
	if len(send) == 0 {
		return len(calls), nil
	}
	for _, s := range req.Signals {
		if s.Attempt > 1 {
			b.metrics.Retries.Inc()
		}
	}
	ans, err := b.post(ctx, &req)
	if err != nil {
		return idx[0], err
	}
	for j, res := range ans.Results {
		if j >= len(send) {
			break
		}
		if err := b.apply(send[j], res); err != nil {
			b.metrics.Signals.WithLabelValues(req.Signals[j].Type, "error").Inc()
			return idx[j], err
		}
		b.done(req.Signals[j].ID)
	}
	if len(ans.Results) < len(send) {
		// The rest come again with the next call (the worker asks).
		return idx[len(ans.Results)], nil
	}
	return len(calls), nil
}

// identities returns the handshake and auth data of the calls' sessions,
// in one round trip when the bridge is registered with a worker; a session
// that is gone is absent.
func (b *Bridge) identities(ctx context.Context, calls []*worker.Call) (map[string]session.Identity, error) {
	var sids []string
	seen := map[string]bool{}
	for _, c := range calls {
		if !seen[c.Signal.SID] {
			seen[c.Signal.SID] = true
			sids = append(sids, c.Signal.SID)
		}
	}
	if b.em != nil {
		return b.em.Identities(ctx, sids)
	}
	out := map[string]session.Identity{}
	for _, c := range calls {
		if _, ok := out[c.Signal.SID]; ok {
			continue
		}
		hs, err := c.Socket.Handshake(ctx)
		if errors.Is(err, session.ErrUnknownSession) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var auth json.RawMessage
		if err := c.Socket.AuthData(ctx, &auth); err != nil && !errors.Is(err, session.ErrUnknownSession) {
			return nil, err
		}
		out[c.Signal.SID] = session.Identity{Handshake: hs, AuthData: string(auth)}
	}
	return out, nil
}

// signal builds the request entry of c. ok is false for input the app
// cannot be given (an event's arguments or a JSON message that are not
// JSON): it is counted "invalid" and handled without a request.
func (b *Bridge) signal(c *worker.Call, ids map[string]session.Identity) (Signal, bool) {
	sig := c.Signal
	s := Signal{ID: sig.ID, Type: string(sig.Kind), SID: sig.SID, Namespace: sig.NS, Time: sig.Time.UnixMilli()}
	switch sig.Kind {
	case bus.KindConnect:
		s.Transport, s.Query = sig.Transport, sig.Query
	case bus.KindDisconnect:
		s.Reason = string(sig.Reason)
	case bus.KindMessage:
		s.Data, _ = json.Marshal(sig.Data)
	case bus.KindJSON:
		s.Data = json.RawMessage(sig.Data)
	case bus.KindEvent:
		s.Name, s.Args = sig.Name, json.RawMessage(c.Event.Args)
		if c.Event.Acknowledgeable() {
			id := sig.MsgID
			s.AckID = &id
		}
	case bus.KindAck:
		s.Args = json.RawMessage(sig.Args)
		if len(s.Args) == 0 {
			s.Args = json.RawMessage("[]")
		}
		id := sig.MsgID
		s.AckID = &id
	default:
		b.metrics.Signals.WithLabelValues(s.Type, "ignored").Inc()
		return s, false
	}
	if (s.Data != nil && !json.Valid(s.Data)) || (s.Args != nil && !json.Valid(s.Args)) {
		b.metrics.Signals.WithLabelValues(s.Type, "invalid").Inc()
		b.badLog.Do(func() {
			b.log.Warn("signal with invalid JSON not sent to the app (logged at most once per 10 s; counted in realtime_bridge_signals_total{result=\"invalid\"})",
				"type", s.Type, "sid", s.SID)
		})
		return s, false
	}
	if id, ok := ids[sig.SID]; ok {
		hs := id.Handshake
		s.Handshake = &hs
		if id.AuthData != "" && json.Valid([]byte(id.AuthData)) {
			s.Auth = json.RawMessage(id.AuthData)
		}
	}
	b.mu.Lock()
	if len(b.sent) >= maxTracked {
		clear(b.sent)
	}
	b.sent[sig.ID]++
	s.Attempt = b.sent[sig.ID]
	b.mu.Unlock()
	return s, true
}

func (b *Bridge) done(id string) {
	b.mu.Lock()
	delete(b.sent, id)
	b.mu.Unlock()
}

// post sends req (waiting for a free slot of Concurrency) and decodes the
// answer.
func (b *Bridge) post(ctx context.Context, req *Request) (*Answer, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("bridge: encode request: %w", err)
	}
	select {
	case b.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-b.sem }()
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, b.cfg.Endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("bridge: %w", err)
	}
	now := time.Now()
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("User-Agent", "realtime-bridge/1")
	hreq.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	hreq.Header.Set(HeaderSignature, Sign(b.cfg.Secret, now, body))
	resp, err := b.cfg.Client.Do(hreq)
	if err != nil {
		status := "error"
		if ctx.Err() != nil {
			status = "timeout"
		}
		b.observe(status, now)
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			// The app is not there (down, restarting): nothing was
			// given to it, so no attempt is counted (bus.ErrNotAttempted).
			return nil, fmt.Errorf("bridge: post %d signals: %w: %w", len(req.Signals), bus.ErrNotAttempted, err)
		}
		return nil, fmt.Errorf("bridge: post %d signals: %w", len(req.Signals), err)
	}
	defer resp.Body.Close()
	answered := time.Now() // the status's arrival (lastOK)
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswerBytes+1))
	status := strconv.Itoa(resp.StatusCode)
	if err != nil {
		if ctx.Err() != nil {
			status = "timeout"
		}
		b.observe(status, now)
		return nil, fmt.Errorf("bridge: read answer: %w", err)
	}
	b.observe(status, now)
	if resp.StatusCode == http.StatusUnauthorized {
		// The app refused the signature (a secret that differs after a
		// deploy): it read none of the signals, so none is dead-lettered
		// for it; they wait, tried again (bus.ErrNotAttempted).
		b.authLog.Do(func() {
			b.log.Error("the app refused the bridge's signature (401): check that -http-secret is the app's secret; signals wait, tried again (logged at most once a minute)",
				"endpoint", b.cfg.Endpoint)
		})
		return nil, fmt.Errorf("%w: %w: 401 %.200q", ErrStatus, bus.ErrNotAttempted, raw)
	}
	if unavailable(resp.StatusCode) && b.lastOK.Load() < now.UnixNano() {
		// A proxy in front of the app that cannot reach it (a restart
		// behind nginx answers 502), or the app saying it cannot serve
		// (503): while no other request was answered 2xx since this one
		// was sent, the app is taken as down, so none of the signals is
		// counted an attempt; they wait, tried again
		// (bus.ErrNotAttempted). An app that answers other requests is up,
		// and the status counts against these signals like any other.
		b.unavailableLog.Do(func() {
			b.log.Error("the app is unavailable (502, 503 or 504, and no request answered 2xx meanwhile); signals wait, tried again (logged at most once a minute)",
				"endpoint", b.cfg.Endpoint, "status", resp.StatusCode)
		})
		return nil, fmt.Errorf("%w: %w: %d %.200q", ErrStatus, bus.ErrNotAttempted, resp.StatusCode, raw)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, fmt.Errorf("%w: %d %.200q", ErrStatus, resp.StatusCode, raw)
	}
	for t := answered.UnixNano(); ; { // lastOK only moves forward
		old := b.lastOK.Load()
		if old >= t || b.lastOK.CompareAndSwap(old, t) {
			break
		}
	}
	if len(raw) > MaxAnswerBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrBadAnswer, MaxAnswerBytes)
	}
	var ans Answer
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ans); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadAnswer, err)
	}
	if ans.V != Version {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrBadAnswer, ans.V, Version)
	}
	return &ans, nil
}

// unavailable reports whether status says the app cannot be reached or
// cannot serve now rather than that it failed the request: 502 Bad
// Gateway, 503 Service Unavailable, 504 Gateway Timeout (RFC 9110 section
// 15.6).
func unavailable(status int) bool {
	return status == http.StatusBadGateway || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout
}

func (b *Bridge) observe(status string, start time.Time) {
	b.metrics.Requests.WithLabelValues(status).Inc()
	b.metrics.RequestSeconds.Observe(time.Since(start).Seconds())
}
