package worker

import (
	"context"
	"log/slog"
	"strconv"
	"time"
	"unicode/utf8"
)

// defaultLogEvery is the least time between two log lines of one reason (a
// logReason); the next line says how many went unlogged (unlogged=). Client
// input decides how often these happen: a client sending unknown events as
// fast as it can costs a line per second per reason, and every one is
// counted in realtime_worker_signals_total.
const defaultLogEvery = time.Second

// logReason is why a signal was not handled as the app meant: the reasons
// whose log lines are rate-limited.
type logReason int

const (
	// logNoNamespace: a message, JSON message or event of a namespace this
	// worker has no handlers for (counted unhandled).
	logNoNamespace logReason = iota
	// logNoHandler: a message, JSON message or event of a namespace this
	// worker serves, with no handler for its kind or event name (counted
	// unhandled).
	logNoHandler
	// logRejected: a handler rejected the client's input (counted
	// rejected).
	logRejected
	// logOverflow: a session ended because its mailbox or send queue
	// overflowed (its client did not take what was sent to it).
	logOverflow
	numLogReasons
)

var logReasonNames = [numLogReasons]string{
	logNoNamespace: "no_namespace",
	logNoHandler:   "no_handler",
	logRejected:    "rejected",
	logOverflow:    "overflow",
}

// String returns the reason's label, as logged (reason=).
func (r logReason) String() string { return logReasonNames[r] }

// logLimited logs msg at level with reason and attrs, at most once per
// defaultLogEvery per reason; a line after suppressed ones says how many
// (unlogged=).
func (w *Worker) logLimited(reason logReason, level slog.Level, msg string, attrs ...any) {
	ok, skipped := w.inputLog[reason].Allow(time.Now(), w.logEvery)
	if !ok {
		return
	}
	attrs = append([]any{"reason", reason.String()}, attrs...)
	if skipped > 0 {
		attrs = append(attrs, "unlogged", skipped)
	}
	w.log.Log(context.Background(), level, msg, attrs...)
}

// logNameBytes is the most bytes of a client-chosen name (an event's) a
// log line prints.
const logNameBytes = 64

// logName returns name for a log line: whole up to logNameBytes, else its
// first bytes (whole characters) and how long it was, so that a client
// cannot make the worker write log lines as long as its packets.
func logName(name string) string {
	if len(name) <= logNameBytes {
		return name
	}
	cut := logNameBytes
	for cut > 0 && !utf8.RuneStart(name[cut]) {
		cut--
	}
	return name[:cut] + "…(" + strconv.Itoa(len(name)) + " bytes)"
}
