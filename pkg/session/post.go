package session

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/pkg/bus"
)

// Retried POSTs. A load balancer retries a POST whose gateway died before
// answering it (deploy/haproxy/haproxy.cfg). Its packets may have been
// committed already: the POST that commits packets records itself in the
// same transaction (PostWrite, in the session's <P>{p}:post:<sid> hash), and
// every POST is checked against that record first (TouchPost). The
// record is the POST's cache-buster t and a digest of its body; the 0.9
// client sends one POST at a time, the next only once the previous one
// was answered, so a POST matching the record is either that POST retried
// or the client's next POST carrying the same body within one tick of its
// clock. The answer tells them apart: the gateway that committed the
// record confirms it (ConfirmPostWrite) once its answer was written whole,
// as a poll's batch is confirmed (docs/redis.md, "Retried POSTs"):
//
//   - no record, or one with another t or digest: a new POST (PostNew);
//   - a matching record, confirmed: the client's next POST (PostNew);
//   - a matching record unconfirmed for Config.BatchConfirmWait since it
//     was committed: its answer never reached the client (its gateway
//     died), so this is the retry (PostRetry): apply nothing, answer as
//     the first gateway would have;
//   - a matching record unconfirmed for less than that: its confirmation
//     may be on its way; ask again shortly (PostWait).

// PostRecordTTL is how long the record of a POST lives after it was
// committed or confirmed. A balancer retries a POST within seconds; a POST
// that finds no record is new.
const PostRecordTTL = time.Minute

// Post identifies a POST for TouchPost and PostWrite: a retry of it
// reproduces both fields, a new POST of the 0.9 client never does (see
// above).
type Post struct {
	// T is the request's cache-buster (the query parameter t; "" none).
	T string
	// Digest is PostDigest of the request body as received ("": no retry
	// check; TouchPost then always answers PostNew).
	Digest string
	// Transport is the POST's transport: xhr-polling, jsonp-polling or
	// htmlfile. It must be of its session's kind (a polling POST to a
	// polling session, an htmlfile POST to an htmlfile one), else TouchPost
	// fails with ErrWrongTransport: a websocket session takes no POST, so
	// that whoever learns its sid can neither send packets in its name nor
	// end it. A polling POST to a session no transport has opened yet
	// opens it, as its first GET would (the connect signal, then the
	// POST's), since the reference connects a session on any request of a
	// handshaken id (manager.js handleClient).
	Transport string
}

// PostDigest returns the digest of a POST body that Post.Digest takes:
// the first 128 bits of its SHA-256, URL-safe base64 (22 characters).
func PostDigest(body []byte) string {
	sum := sha256.Sum256(body)
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// PostVerdict is what TouchPost found of a POST's record.
type PostVerdict int

// POST verdicts.
const (
	// PostNew: apply the POST's packets, recording it (PostWrite).
	PostNew PostVerdict = iota
	// PostRetry: the POST was committed already by a gateway that never
	// answered it; apply nothing and answer it.
	PostRetry
	// PostWait: the POST may be a retry; TouchPost again after
	// PostReply.Recheck.
	PostWait
)

func (v PostVerdict) String() string {
	switch v {
	case PostNew:
		return "new"
	case PostRetry:
		return "retry"
	case PostWait:
		return "wait"
	}
	return "PostVerdict(" + strconv.Itoa(int(v)) + ")"
}

// PostReply is what TouchPost found.
type PostReply struct {
	// Class is the session's transport class: "poll", "stream", or ""
	// before any transport opened.
	Class string
	// Namespaces are the session's connected namespaces.
	Namespaces []string
	// Verdict says whether to apply the POST.
	Verdict PostVerdict
	// Recheck, with PostWait, is how long to wait before asking again
	// (at most 20 ms).
	Recheck time.Duration
}

// TouchPost is Touch for a POST identified by p (ErrUnknownSession, or
// ErrWrongTransport for a POST its session's transport does not take: see
// Post.Transport): it also says whether the
// POST is new, a retry of one already committed, or not known yet (see
// above). It returns ErrUnknownSession for a session that is gone.
func (s *Store) TouchPost(ctx context.Context, sid string, p Post) (PostReply, error) {
	return s.touch(ctx, sid, p)
}

// PostWrite records, as a step of the committer batch that commits a
// POST's packets, that POST postID (unique on this node) of session sid
// was applied: a retry of it, until the record is confirmed, applies
// nothing. The record's time is taken when the batch is sent, so a batch
// retried by the committer is not recorded as older than it is.
func (s *Store) PostWrite(sid string, p Post, postID string) bus.Write {
	key, owner := s.cfg.Keys.Post(sid), s.cfg.Node+" "+postID
	return func(pipe redis.Pipeliner) error {
		ctx := context.Background()
		pipe.HSet(ctx, key, "t", p.T, "d", p.Digest, "o", owner,
			"tm", strconv.FormatInt(time.Now().UnixMilli(), 10), "c", "")
		pipe.PExpire(ctx, key, PostRecordTTL)
		return nil
	}
}

// ConfirmPostWrite confirms, as a step of a committer batch, that the
// answer of POST postID of this node was written whole: a POST with the
// same cache-buster and body after it is new.
func (s *Store) ConfirmPostWrite(sid, postID string) bus.Write {
	key, owner := s.cfg.Keys.Post(sid), s.cfg.Node+" "+postID
	return func(pipe redis.Pipeliner) error {
		ctx := context.Background()
		pipe.HSet(ctx, key, "c", owner)
		pipe.PExpire(ctx, key, PostRecordTTL)
		return nil
	}
}
