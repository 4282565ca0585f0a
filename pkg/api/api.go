package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/realtime/realtime/internal/ratelog"
	"github.com/realtime/realtime/pkg/worker"
)

// Defaults of Config and the bounds of a listing.
const (
	// DefaultMaxBodyBytes is the largest request body accepted (1 MiB);
	// a larger one gets 413 body_too_large.
	DefaultMaxBodyBytes = 1 << 20
	// DefaultReadTimeout bounds reading a whole request, headers and body
	// (http.Server.ReadTimeout); a slower body gets 408 body_timeout when
	// the connection can still answer.
	DefaultReadTimeout = 10 * time.Second
	// DefaultWriteTimeout bounds handling a request and writing its answer
	// (http.Server.WriteTimeout).
	DefaultWriteTimeout = 30 * time.Second
	// DefaultPageSize is the limit of GET /v1/sockets and of a namespace's
	// GET /v1/rooms when none is given.
	DefaultPageSize = 100
	// MaxPageSize is the largest limit they accept.
	MaxPageSize = 1000
	// RequestTimeout bounds the Redis work of one request.
	RequestTimeout = 5 * time.Second
)

// errorLogEvery is the least time between two log lines about API errors of
// one reason; the next line says how many went unlogged.
const errorLogEvery = 10 * time.Second

// ErrNoKey is returned by CheckListen for an API without a key on an
// address that is not loopback.
var ErrNoKey = errors.New("api: refusing to serve the HTTP API without a key on a non-loopback address: set -api-key (or GATEWAY_API_KEY, or REALTIME_API_KEY), or listen on 127.0.0.1/localhost")

// Config configures the API.
type Config struct {
	// Key is the bearer key clients send ("Authorization: Bearer KEY").
	// Empty: no authentication (see CheckListen). Default: "".
	Key string
	// MaxBodyBytes bounds a request body. Default: DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// ReadTimeout bounds reading a request. Default: DefaultReadTimeout.
	ReadTimeout time.Duration
	// WriteTimeout bounds answering a request. Default: DefaultWriteTimeout.
	WriteTimeout time.Duration
	// Logger receives the rate-limited error lines. Default: slog.Default().
	Logger *slog.Logger
}

func (c *Config) defaults() {
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// CheckListen returns ErrNoKey when key is empty and addr (host:port) is
// not a loopback address: "localhost", 127.0.0.0/8 or ::1. An empty host
// (":8200") listens on every interface, so it needs a key.
func CheckListen(addr, key string) error {
	if key != "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("api: listen address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return ErrNoKey
}

// Metrics are the API's Prometheus collectors.
type Metrics struct {
	// Requests counts answered requests by endpoint (the path, or "other")
	// and HTTP status code.
	Requests *prometheus.CounterVec
	// Errors counts error answers by reason (bad_json, bad_field,
	// unauthorized, not_found, unknown_socket, method_not_allowed,
	// body_timeout, body_too_large, redis_unavailable).
	Errors *prometheus.CounterVec
	// Duration is the time to answer a request, by endpoint, in seconds.
	Duration *prometheus.HistogramVec
}

// NewMetrics registers the API's metrics with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "realtime_api_requests_total",
			Help: "Server HTTP API requests answered, by endpoint and status code."}, []string{"endpoint", "code"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "realtime_api_errors_total",
			Help: "Server HTTP API error answers, by reason."}, []string{"reason"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "realtime_api_request_duration_seconds",
			Help: "Time to answer a server HTTP API request, by endpoint.", Buckets: prometheus.DefBuckets}, []string{"endpoint"}),
	}
	if reg != nil {
		reg.MustRegister(m.Requests, m.Errors, m.Duration)
	}
	return m
}

// Error reasons: the "error" of an error answer and the reason label of
// realtime_api_errors_total, with their HTTP status.
const (
	reasonBadJSON          = "bad_json"
	reasonBadField         = "bad_field"
	reasonUnauthorized     = "unauthorized"
	reasonNotFound         = "not_found"
	reasonUnknownSocket    = "unknown_socket"
	reasonMethodNotAllowed = "method_not_allowed"
	reasonBodyTimeout      = "body_timeout"
	reasonBodyTooLarge     = "body_too_large"
	reasonRedis            = "redis_unavailable"
)

var reasonStatus = map[string]int{
	reasonBadJSON:          http.StatusBadRequest,
	reasonBadField:         http.StatusBadRequest,
	reasonUnauthorized:     http.StatusUnauthorized,
	reasonNotFound:         http.StatusNotFound,
	reasonUnknownSocket:    http.StatusNotFound,
	reasonMethodNotAllowed: http.StatusMethodNotAllowed,
	reasonBodyTimeout:      http.StatusRequestTimeout,
	reasonBodyTooLarge:     http.StatusRequestEntityTooLarge,
	reasonRedis:            http.StatusServiceUnavailable,
}

// apiError is an error answer.
type apiError struct {
	Reason  string `json:"error"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *apiError) Error() string { return e.Reason + ": " + e.Message }

func badField(field, format string, args ...any) *apiError {
	return &apiError{Reason: reasonBadField, Field: field, Message: fmt.Sprintf(format, args...)}
}

// Server serves the API. Make it with New.
type Server struct {
	em      *worker.Emitter
	cfg     Config
	metrics *Metrics
	keySum  [sha256.Size]byte
	routes  map[string]route
	logs    map[string]*ratelog.Limiter // by reason
}

type route struct {
	method string
	handle func(s *Server, r *http.Request) (any, error)
}

// New returns the API on em. metrics may be nil (NewMetrics(nil)).
func New(em *worker.Emitter, cfg Config, metrics *Metrics) *Server {
	cfg.defaults()
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	s := &Server{em: em, cfg: cfg, metrics: metrics, keySum: sha256.Sum256([]byte(cfg.Key)),
		logs: map[string]*ratelog.Limiter{}}
	for reason := range reasonStatus {
		s.logs[reason] = &ratelog.Limiter{}
	}
	s.routes = map[string]route{
		"/v1/emit":       {http.MethodPost, (*Server).emit},
		"/v1/send":       {http.MethodPost, (*Server).send},
		"/v1/json":       {http.MethodPost, (*Server).sendJSON},
		"/v1/join":       {http.MethodPost, (*Server).join},
		"/v1/leave":      {http.MethodPost, (*Server).leave},
		"/v1/disconnect": {http.MethodPost, (*Server).disconnect},
		"/v1/sockets":    {http.MethodGet, (*Server).sockets},
		"/v1/rooms":      {http.MethodGet, (*Server).rooms},
		"/v1/count":      {http.MethodGet, (*Server).count},
	}
	return s
}

// HTTPServer returns the http.Server to serve s with: a request read
// (headers and body) within Config.ReadTimeout, answered within
// Config.WriteTimeout, 16 KiB of headers at most. The caller sets Addr or
// calls Serve with a listener.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{
		Handler:           s,
		ReadHeaderTimeout: min(s.cfg.ReadTimeout, 5*time.Second),
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
}

// ServeHTTP authenticates, routes, and answers the request in JSON.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	endpoint := "other"
	rt, known := s.routes[r.URL.Path]
	if known {
		endpoint = r.URL.Path
	}
	var (
		body any
		err  error
	)
	switch {
	case !s.authorized(r):
		w.Header().Set("WWW-Authenticate", `Bearer realm="realtime"`)
		err = &apiError{Reason: reasonUnauthorized, Message: "missing or wrong key: send Authorization: Bearer KEY"}
	case !known:
		err = &apiError{Reason: reasonNotFound, Message: "no such endpoint: " + r.URL.Path}
	case r.Method != rt.method:
		w.Header().Set("Allow", rt.method)
		err = &apiError{Reason: reasonMethodNotAllowed, Message: r.URL.Path + " takes " + rt.method}
	default:
		body, err = rt.handle(s, r)
	}
	status := http.StatusOK
	if err != nil {
		ae := s.classify(err)
		status = reasonStatus[ae.Reason]
		body = ae
		s.metrics.Errors.WithLabelValues(ae.Reason).Inc()
		if ok, unlogged := s.logs[ae.Reason].Allow(time.Now(), errorLogEvery); ok {
			s.cfg.Logger.Info("api request refused", "reason", ae.Reason, "status", status, "method", r.Method,
				"path", r.URL.Path, "remote", r.RemoteAddr, "message", ae.Message, "unlogged_before", unlogged)
		}
	}
	out, _ := json.Marshal(body)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(out, '\n'))
	s.metrics.Requests.WithLabelValues(endpoint, strconv.Itoa(status)).Inc()
	s.metrics.Duration.WithLabelValues(endpoint).Observe(time.Since(start).Seconds())
}

// classify turns a handler's error into its answer: its own apiError, or
// redis_unavailable for the rest (every other failure is a Redis call's).
func (s *Server) classify(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	return &apiError{Reason: reasonRedis, Message: err.Error()}
}

// authorized compares the bearer key in constant time; with no key
// configured every request is.
func (s *Server) authorized(r *http.Request) bool {
	if s.cfg.Key == "" {
		return true
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
	return subtle.ConstantTimeCompare(sum[:], s.keySum[:]) == 1
}

// target is the common part of the action bodies.
type target struct {
	Namespace string `json:"namespace"`
	Socket    string `json:"socket"`
	Room      string `json:"room"`
	Except    string `json:"except"`
}

// emitBody is POST /v1/emit's body.
type emitBody struct {
	target
	Event string          `json:"event"`
	Args  json.RawMessage `json:"args"`
}

// sendBody is POST /v1/send's body.
type sendBody struct {
	target
	Message *string `json:"message"`
}

// jsonBody is POST /v1/json's body.
type jsonBody struct {
	target
	Data json.RawMessage `json:"data"`
}

// decode reads r's JSON body into v: one object, no unknown fields, at
// most Config.MaxBodyBytes.
func (s *Server) decode(r *http.Request, v any) error {
	body := http.MaxBytesReader(nil, r.Body, s.cfg.MaxBodyBytes)
	raw, err := io.ReadAll(body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return &apiError{Reason: reasonBodyTooLarge, Message: fmt.Sprintf("the body is over %d bytes", s.cfg.MaxBodyBytes)}
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return &apiError{Reason: reasonBodyTimeout, Message: fmt.Sprintf("the body did not arrive within %v", s.cfg.ReadTimeout)}
		}
		return &apiError{Reason: reasonBadJSON, Message: "reading the body: " + err.Error()}
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return badField(typeErr.Field, "%s must be a JSON %s", typeErr.Field, jsonKind(typeErr.Type.Kind().String()))
		}
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			f = strings.Trim(f, `"`)
			return badField(f, "unknown field %q", f)
		}
		return &apiError{Reason: reasonBadJSON, Message: "the body must be one JSON object: " + err.Error()}
	}
	if dec.More() {
		return &apiError{Reason: reasonBadJSON, Message: "the body must be one JSON object, with nothing after it"}
	}
	return nil
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string", "ptr":
		return "string"
	case "struct":
		return "object"
	}
	return goKind
}

// check validates a target: a namespace, at most one of socket and room,
// except only without socket. needSocket asks for a socket.
func (t *target) check(needSocket, needRoom bool) error {
	if err := checkNamespace(t.Namespace); err != nil {
		return err
	}
	if t.Socket != "" || needSocket {
		if err := checkSID("socket", t.Socket); err != nil {
			return err
		}
	}
	if t.Room != "" || needRoom {
		if err := checkRoom("room", t.Room); err != nil {
			return err
		}
	}
	if t.Except != "" {
		if err := checkSID("except", t.Except); err != nil {
			return err
		}
	}
	if !needRoom && t.Socket != "" && t.Room != "" {
		return badField("room", "give socket or room, not both")
	}
	if t.Socket != "" && t.Except != "" {
		return badField("except", "except goes with a room or a namespace, not with socket")
	}
	return nil
}

// checkNamespace accepts "" (the default namespace) or "/name" without ':'
// (the packet grammar's endpoint) or control characters.
func checkNamespace(ns string) error {
	if ns == "" {
		return nil
	}
	if !strings.HasPrefix(ns, "/") || len(ns) > 256 || strings.ContainsFunc(ns, func(r rune) bool { return r == ':' || r < ' ' }) {
		return badField("namespace", `namespace must be "" (the default) or "/name", without ':' or control characters, at most 256 bytes`)
	}
	return nil
}

// checkSID accepts what session.NewSID makes, and other ids of up to 128
// letters, digits, '-' and '_'.
func checkSID(field, sid string) error {
	if sid == "" {
		return badField(field, "%s is required", field)
	}
	if len(sid) > 128 || strings.ContainsFunc(sid, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}) {
		return badField(field, "%s must be a session id (letters, digits, '-' and '_', at most 128)", field)
	}
	return nil
}

func checkRoom(field, room string) error {
	if room == "" {
		return badField(field, "%s is required", field)
	}
	if strings.ContainsRune(room, '\n') {
		return badField(field, "%s must not contain a newline", field)
	}
	return nil
}

// ctx bounds a request's Redis work.
func requestContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), RequestTimeout)
}

// connected answers unknown_socket unless sid is connected to ns.
func (s *Server) connected(ctx context.Context, sid, ns string) error {
	ok, err := s.em.Connected(ctx, sid, ns)
	if err != nil {
		return err
	}
	if !ok {
		return &apiError{Reason: reasonUnknownSocket, Message: fmt.Sprintf("socket %s is not connected to namespace %q", sid, ns)}
	}
	return nil
}

// sender is what an emit, send or json goes through: a socket or a room.
type sender interface {
	EmitRaw(name string, args []byte) error
	Send(msg string) error
	SendJSON(v any) error
}

// sender returns where t's action goes, after checking a target socket is
// connected.
func (s *Server) sender(r *http.Request, t target) (sender, error) {
	if t.Socket != "" {
		ctx, cancel := requestContext(r)
		defer cancel()
		if err := s.connected(ctx, t.Socket, t.Namespace); err != nil {
			return nil, err
		}
		return s.em.Socket(t.Socket, t.Namespace), nil
	}
	if t.Room != "" {
		return s.em.In(t.Namespace, t.Room).Except(t.Except), nil
	}
	return s.em.Of(t.Namespace).Except(t.Except), nil
}

var ok = map[string]bool{"ok": true}

func (s *Server) emit(r *http.Request) (any, error) {
	var b emitBody
	if err := s.decode(r, &b); err != nil {
		return nil, err
	}
	if err := b.check(false, false); err != nil {
		return nil, err
	}
	if b.Event == "" {
		return nil, badField("event", "event is required")
	}
	if len(b.Args) > 0 && b.Args[0] != '[' && string(b.Args) != "null" {
		return nil, badField("args", "args must be a JSON array")
	}
	if string(b.Args) == "null" {
		b.Args = nil
	}
	to, err := s.sender(r, b.target)
	if err != nil {
		return nil, err
	}
	return ok, to.EmitRaw(b.Event, b.Args)
}

func (s *Server) send(r *http.Request) (any, error) {
	var b sendBody
	if err := s.decode(r, &b); err != nil {
		return nil, err
	}
	if err := b.check(false, false); err != nil {
		return nil, err
	}
	if b.Message == nil {
		return nil, badField("message", "message is required")
	}
	to, err := s.sender(r, b.target)
	if err != nil {
		return nil, err
	}
	return ok, to.Send(*b.Message)
}

func (s *Server) sendJSON(r *http.Request) (any, error) {
	var b jsonBody
	if err := s.decode(r, &b); err != nil {
		return nil, err
	}
	if err := b.check(false, false); err != nil {
		return nil, err
	}
	if len(b.Data) == 0 {
		return nil, badField("data", "data is required (any JSON value)")
	}
	to, err := s.sender(r, b.target)
	if err != nil {
		return nil, err
	}
	return ok, to.SendJSON(b.Data)
}

// roomAction is join or leave.
func (s *Server) roomAction(r *http.Request, join bool) (any, error) {
	var t target
	if err := s.decode(r, &t); err != nil {
		return nil, err
	}
	if t.Except != "" {
		return nil, badField("except", "join and leave take no except")
	}
	if err := t.check(true, true); err != nil {
		return nil, err
	}
	ctx, cancel := requestContext(r)
	defer cancel()
	if err := s.connected(ctx, t.Socket, t.Namespace); err != nil {
		return nil, err
	}
	sock := s.em.Socket(t.Socket, t.Namespace)
	if join {
		return ok, sock.Join(t.Room)
	}
	return ok, sock.Leave(t.Room)
}

func (s *Server) join(r *http.Request) (any, error)  { return s.roomAction(r, true) }
func (s *Server) leave(r *http.Request) (any, error) { return s.roomAction(r, false) }

func (s *Server) disconnect(r *http.Request) (any, error) {
	var t target
	if err := s.decode(r, &t); err != nil {
		return nil, err
	}
	if t.Room != "" {
		return nil, badField("room", "disconnect takes no room")
	}
	if t.Except != "" {
		return nil, badField("except", "disconnect takes no except")
	}
	if err := t.check(true, false); err != nil {
		return nil, err
	}
	ctx, cancel := requestContext(r)
	defer cancel()
	if err := s.connected(ctx, t.Socket, t.Namespace); err != nil {
		return nil, err
	}
	return ok, s.em.Socket(t.Socket, t.Namespace).Disconnect()
}

// query reads the query parameters of a GET, refusing unknown ones.
func query(r *http.Request, known ...string) (map[string]string, error) {
	q := r.URL.Query()
	out := make(map[string]string, len(known))
	for name, vs := range q {
		found := false
		for _, k := range known {
			found = found || k == name
		}
		if !found {
			return nil, badField(name, "unknown parameter %q", name)
		}
		if len(vs) > 1 {
			return nil, badField(name, "%s is given more than once", name)
		}
		out[name] = vs[0]
	}
	return out, nil
}

// socketsPage is GET /v1/sockets's answer.
type socketsPage struct {
	Sockets []string `json:"sockets"`
	Cursor  string   `json:"cursor"`
}

func (s *Server) sockets(r *http.Request) (any, error) {
	q, err := query(r, "namespace", "room", "cursor", "limit")
	if err != nil {
		return nil, err
	}
	if err := checkNamespace(q["namespace"]); err != nil {
		return nil, err
	}
	if room, given := q["room"]; given {
		if err := checkRoom("room", room); err != nil {
			return nil, err
		}
	}
	cursor, limit, err := pageParams(q)
	if err != nil {
		return nil, err
	}
	ctx, cancel := requestContext(r)
	defer cancel()
	ids, next, err := s.em.SocketsPage(ctx, q["namespace"], q["room"], cursor, limit)
	if errors.Is(err, worker.ErrBadCursor) {
		return nil, badField("cursor", "cursor must be the cursor of the previous page")
	}
	if err != nil {
		return nil, err
	}
	page := socketsPage{Sockets: ids, Cursor: ""}
	if page.Sockets == nil {
		page.Sockets = []string{}
	}
	if next != 0 {
		page.Cursor = strconv.FormatUint(next, 10)
	}
	return page, nil
}

// roomsAnswer is GET /v1/rooms's answer; Cursor is "" for a socket's rooms
// and after the last page of a namespace's.
type roomsAnswer struct {
	Rooms  []string `json:"rooms"`
	Cursor string   `json:"cursor"`
}

// pageParams reads cursor and limit.
func pageParams(q map[string]string) (cursor uint64, limit int, err error) {
	if c := q["cursor"]; c != "" {
		if cursor, err = strconv.ParseUint(c, 10, 64); err != nil {
			return 0, 0, badField("cursor", "cursor must be the cursor of the previous page")
		}
	}
	limit = DefaultPageSize
	if l, given := q["limit"]; given {
		if limit, err = strconv.Atoi(l); err != nil || limit < 1 || limit > MaxPageSize {
			return 0, 0, badField("limit", "limit must be a whole number from 1 to %d", MaxPageSize)
		}
	}
	return cursor, limit, nil
}

// rooms answers the rooms of a socket (with socket), or a page of the
// rooms of a namespace that have members (without).
func (s *Server) rooms(r *http.Request) (any, error) {
	q, err := query(r, "namespace", "socket", "cursor", "limit")
	if err != nil {
		return nil, err
	}
	if err := checkNamespace(q["namespace"]); err != nil {
		return nil, err
	}
	ctx, cancel := requestContext(r)
	defer cancel()
	if sid, given := q["socket"]; given {
		for _, p := range []string{"cursor", "limit"} {
			if _, also := q[p]; also {
				return nil, badField(p, "%s pages the rooms of a namespace, not of a socket", p)
			}
		}
		if err := checkSID("socket", sid); err != nil {
			return nil, err
		}
		if err := s.connected(ctx, sid, q["namespace"]); err != nil {
			return nil, err
		}
		rooms, err := s.em.Socket(sid, q["namespace"]).Rooms(ctx)
		if err != nil {
			return nil, err
		}
		if rooms == nil {
			rooms = []string{}
		}
		return roomsAnswer{Rooms: rooms}, nil
	}
	cursor, limit, err := pageParams(q)
	if err != nil {
		return nil, err
	}
	rooms, next, err := s.em.RoomsPage(ctx, q["namespace"], cursor, limit)
	if errors.Is(err, worker.ErrBadCursor) {
		return nil, badField("cursor", "cursor must be the cursor of the previous page")
	}
	if err != nil {
		return nil, err
	}
	ans := roomsAnswer{Rooms: rooms}
	if next != 0 {
		ans.Cursor = strconv.FormatUint(next, 10)
	}
	return ans, nil
}

func (s *Server) count(r *http.Request) (any, error) {
	q, err := query(r, "namespace", "room")
	if err != nil {
		return nil, err
	}
	if err := checkNamespace(q["namespace"]); err != nil {
		return nil, err
	}
	ctx, cancel := requestContext(r)
	defer cancel()
	var n int64
	if room, given := q["room"]; given {
		if err := checkRoom("room", room); err != nil {
			return nil, err
		}
		n, err = s.em.CountRoom(ctx, q["namespace"], room)
	} else {
		n, err = s.em.Count(ctx, q["namespace"])
	}
	if err != nil {
		return nil, err
	}
	return map[string]int64{"count": n}, nil
}
