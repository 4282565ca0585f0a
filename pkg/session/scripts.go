package session

import (
	"context"
	"embed"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/pkg/bus"
)

// The Lua scripts live in lua/*.lua (lua/lib.lua documents their
// conventions). Each script runs as three parts: a header rendered here
// from Go, the definitions of lua/lib.lua it uses, and the script's own
// file; then room_member is expanded (luaSource).
//
//go:embed lua/*.lua
var luaFiles embed.FS

// The scripts build no key name: every key they touch comes as KEYS
// (docs/redis.md, "Declared keys"), so pkg/bus is the one owner of key
// names. The one macro luaSource expands is room_member(ns, room), in
// place, to bus.RoomMember's format (a membership's room, not a key).

// luaHeader is the Lua every script starts with, rendered from the Go that
// owns each name and number in it:
//
//   - GATEWAYS, NOW, NODE: ARGV[1..3] as Store.args and Store.run pass
//     them (the gateways of the caller's route table, node ids joined by
//     "\n", whose route keys a script that routes takes: lua/lib.lua's
//     partition_keys; the time in unix ms; the node id of the gateway or
//     worker running the script); script arguments start at ARGV[4];
//   - ROUTES_STALE: the error a script that routes answers, having written
//     nothing, when its caller's route table misses a gateway
//     (routeStaleReply, ErrRouteTableStale); NOT_ROUTED: the one a script
//     that makes a session name its caller answers, having written
//     nothing, when the caller is not in the partition's routing set
//     (notRoutedReply); SESSIONS_STALE: the one a commit or inbox script
//     answers, having written nothing, when an effect would name a session
//     its caller did not declare (sessionsStaleReply); STREAM_UNDECLARED:
//     the one a commit script answers, having written nothing, when a
//     commit's stream is not among its keys (streamUndeclaredReply);
//   - MB_DEFAULT, MB_WAIT_DEFAULT, MB_HARD: the mailbox bounds of sessions
//     created before they were written into the session (mxb, mxw), from
//     DefaultMailboxBytes, DefaultMailboxDrainTimeout and MailboxHardFactor;
//   - SIGNAL_VERSION, SIGNAL_FIELD: bus.SchemaVersion and bus.SignalField;
//   - ROUTE_FIELD, ROUTE_MAXLEN: bus.RouteField and bus.RouteStreamMaxLen;
//   - OUTBOX_TO, OUTBOX_EFFECTS, OUTBOX_READ: OutboxTo, OutboxEffects and
//     OutboxRead (outbox.go).
var luaHeader = renderLuaHeader()

func renderLuaHeader() string {
	var b strings.Builder
	b.WriteString("-- Rendered by pkg/session/scripts.go from the Go constants and bus.Keys.\n")
	b.WriteString("local GATEWAYS, NOW, NODE = ARGV[1], ARGV[2], ARGV[3]\n")
	fmt.Fprintf(&b, "local ROUTES_STALE, NOT_ROUTED, SESSIONS_STALE, STREAM_UNDECLARED = %s, %s, %s, %s\n",
		luaString(routeStaleReply), luaString(notRoutedReply), luaString(sessionsStaleReply), luaString(streamUndeclaredReply))
	fmt.Fprintf(&b, "local MB_DEFAULT, MB_WAIT_DEFAULT, MB_HARD = %d, %d, %d\n",
		DefaultMailboxBytes, DefaultMailboxDrainTimeout.Milliseconds(), MailboxHardFactor)
	fmt.Fprintf(&b, "local SIGNAL_VERSION, SIGNAL_FIELD = %s, %s\n",
		luaString(bus.SchemaVersion), luaString(bus.SignalField))
	fmt.Fprintf(&b, "local ROUTE_FIELD, ROUTE_MAXLEN = %s, %d\n", luaString(bus.RouteField), bus.RouteStreamMaxLen)
	fmt.Fprintf(&b, "local OUTBOX_TO, OUTBOX_EFFECTS, OUTBOX_READ = %s, %s, %d\n",
		luaString(OutboxTo), luaString(OutboxEffects), OutboxRead)
	return b.String()
}

// luaMacro expands one call of room_member.
func luaMacro(name string, args []string) string {
	if len(args) != 2 {
		panic(fmt.Sprintf("session: %s takes 2 arguments, got %q", name, args))
	}
	return "((" + args[0] + ") .. " + luaString(bus.RoomSeparator) + " .. (" + args[1] + "))"
}

func isLuaMacro(name string) bool { return name == "room_member" }

// expandLuaMacros expands every room_member call in src.
func expandLuaMacros(src string) string {
	var b strings.Builder
	for i := 0; i < len(src); {
		c := src[i]
		if !isIdentStart(c) || (i > 0 && isIdentByte(src[i-1])) {
			b.WriteByte(c)
			i++
			continue
		}
		j := i + 1
		for j < len(src) && isIdentByte(src[j]) {
			j++
		}
		name := src[i:j]
		if !isLuaMacro(name) || j >= len(src) || src[j] != '(' {
			b.WriteString(name)
			i = j
			continue
		}
		args, end := luaCallArgs(src, j)
		for k := range args {
			args[k] = expandLuaMacros(args[k])
		}
		b.WriteString(luaMacro(name, args))
		i = end
	}
	return b.String()
}

// luaCallArgs splits the arguments of the call whose '(' is at src[open]
// and returns them with the index after its ')'. It knows nested
// parentheses, braces and quoted strings, which is all room_member's
// arguments hold.
func luaCallArgs(src string, open int) ([]string, int) {
	var args []string
	depth, start := 0, open+1
	for i := open; i < len(src); i++ {
		switch c := src[i]; c {
		case '\'', '"':
			for i++; i < len(src) && src[i] != c; i++ {
				if src[i] == '\\' {
					i++
				}
			}
		case '(', '{', '[':
			depth++
		case ')', '}', ']':
			depth--
			if depth == 0 {
				if a := strings.TrimSpace(src[start:i]); a != "" || len(args) > 0 {
					args = append(args, a)
				}
				return args, i + 1
			}
		case ',':
			if depth == 1 {
				args = append(args, strings.TrimSpace(src[start:i]))
				start = i + 1
			}
		}
	}
	panic(fmt.Sprintf("session: unbalanced macro call at %.40q", src[open:]))
}

func isIdentStart(c byte) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

func isIdentByte(c byte) bool { return isIdentStart(c) || '0' <= c && c <= '9' }

// luaString quotes s as a Lua string literal.
func luaString(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' || c > '~' || c == '\'' || c == '\\' {
			fmt.Fprintf(&b, `\%03d`, c) // three digits: a digit may follow
			continue
		}
		b.WriteByte(c)
	}
	b.WriteByte('\'')
	return b.String()
}

// A script is one of the session scripts.
type script struct {
	*redis.Script
	// routes is true for a script that takes its partition's shared keys
	// (lua/lib.lua's partition_keys; Store.run): it routes, or changes
	// memberships.
	routes bool
}

// luaScript assembles the script in lua/<name>.lua.
func luaScript(name string) *script {
	src := luaSource(name)
	return &script{Script: redis.NewScript(src), routes: strings.Contains(src, "local function partition_keys(")}
}

// luaSource returns the script in lua/<name>.lua preceded by the lines of
// the header and the definitions of lua/lib.lua it uses, directly or
// through other definitions, in their order. Redis runs a script's whole
// text on every call, and each definition is a closure or a table made
// anew each time: a script that carried every helper would pay for all of
// them.
func luaSource(name string) string {
	lib, err := luaFiles.ReadFile("lua/lib.lua")
	if err != nil {
		panic(err)
	}
	src, err := luaFiles.ReadFile("lua/" + name + ".lua")
	if err != nil {
		panic(err)
	}
	units := append(luaUnits(luaHeader), luaUnits(string(lib))...)
	needed := map[string]bool{}
	for _, id := range luaIdents(string(src)) {
		needed[id] = true
	}
	in := make([]bool, len(units))
	for changed := true; changed; {
		changed = false
		for i, u := range units {
			if in[i] || !slices.ContainsFunc(u.defs, func(d string) bool { return needed[d] }) {
				continue
			}
			in[i], changed = true, true
			for _, id := range luaIdents(u.text) {
				needed[id] = true
			}
		}
	}
	var b strings.Builder
	for i, u := range units {
		if in[i] {
			b.WriteString(u.text)
		}
	}
	b.Write(src)
	return expandLuaMacros(b.String())
}

// A luaUnit is one top-level definition of Lua source: a line "local
// function name" or "local a, b =" at the start of a line, the comment
// lines just before it, and what follows up to the next unit.
type luaUnit struct {
	text string
	defs []string
}

var (
	luaDef      = regexp.MustCompile(`^local\s+(?:function\s+([A-Za-z_]\w*)|([A-Za-z_][\w\s,]*?)\s*=)`)
	luaIdent    = regexp.MustCompile(`[A-Za-z_]\w*`)
	luaComment  = regexp.MustCompile(`--.*`)
	luaNameList = regexp.MustCompile(`[A-Za-z_]\w*`)
)

// luaUnits splits Lua source into its top-level definitions; text before
// the first one (the file's opening comment) is dropped.
func luaUnits(src string) []luaUnit {
	var units []luaUnit
	var pending []string // comment lines not yet attached
	for _, line := range strings.SplitAfter(src, "\n") {
		if m := luaDef.FindStringSubmatch(line); m != nil {
			u := luaUnit{text: strings.Join(pending, "") + line}
			if m[1] != "" {
				u.defs = []string{m[1]}
			} else {
				u.defs = luaNameList.FindAllString(m[2], -1)
			}
			units = append(units, u)
			pending = nil
			continue
		}
		if strings.HasPrefix(line, "--") {
			pending = append(pending, line)
			continue
		}
		if len(units) > 0 {
			units[len(units)-1].text += strings.Join(pending, "") + line
		}
		pending = nil
	}
	return units
}

// luaIdents returns the names Lua source mentions outside comments.
func luaIdents(src string) []string {
	return luaIdent.FindAllString(luaComment.ReplaceAllString(src, ""), -1)
}

// The scripts; lua/<name>.lua documents each one's KEYS, ARGV and reply.
var (
	openScript          = luaScript("open")
	pollScript          = luaScript("poll")
	releaseScript       = luaScript("release")
	touchScript         = luaScript("touch")
	endScript           = luaScript("end")
	deliverScript       = luaScript("deliver")
	joinScript          = luaScript("join")
	leaveScript         = luaScript("leave")
	reapDeadlinesScript = luaScript("reap_deadlines")
	reapGatewayScript   = luaScript("reap_gateway")
	commitScript        = luaScript("commit")
	commitNodeScript    = luaScript("commit_node")
	inboxScript         = luaScript("inbox")
	ackScript           = luaScript("ack")
)

// sessionKeys returns the KEYS of a script on session sid (lua/lib.lua):
// the deadlines set, the session's keys in the order own_keys() takes
// them (its partition stream and POST record last), then extra.
func (s *Store) sessionKeys(sid string, extra ...string) []string {
	k := s.cfg.Keys
	keys := make([]string, 0, 10+len(extra))
	keys = append(keys, k.Deadlines(k.PartitionOf(sid)), k.Session(sid), k.Mailbox(sid), k.SessionNamespaces(sid),
		k.SessionRooms(sid), k.Acks(sid), k.Kick(sid), k.Confirmed(sid), k.StreamFor(sid), k.Post(sid))
	return append(keys, extra...)
}

// A scriptCall is one run of a script (evalAll) on partitions parts
// (Store.runIn: one, or those commit_node.lua's effects reach). A script on
// sessions named by data has a declaration: its args leave ARGV[4] for
// them, and declareAll puts their keys after keys (declared).
type scriptCall struct {
	script   *script
	parts    []int // the partitions whose shared keys it takes (Store.runIn)
	keys     []string
	args     []any
	decl     *declaration
	declared []string
	cmd      *redis.Cmd
}

// evalAll runs the calls at once, each as its own command (EVALSHA, then
// EVAL if Redis did not know the script), on connections of their own, and
// leaves each result in its cmd. Not a pipeline: go-redis sends a pipeline
// again after a read timeout, which would hold a caller several timeouts
// long while Redis stalls, where a command fails after one.
//
// Calls with a declaration are given their declared sessions first
// (declareAll), and those that answer that a broadcast's room gained a
// member since are declared and run again, declareAttempts times in all.
func (s *Store) evalAll(ctx context.Context, calls []*scriptCall) {
	pending := calls
	for attempt := 1; ; attempt++ {
		for _, c := range pending {
			c.cmd = nil
		}
		s.declareAll(ctx, pending)
		s.runAll(ctx, pending)
		if attempt == declareAttempts {
			return
		}
		pending = slices.DeleteFunc(slices.Clone(pending), func(c *scriptCall) bool { return !isReply(c.cmd.Err(), sessionsStaleReply) })
		if len(pending) == 0 {
			return
		}
	}
}

// runAll runs the calls evalAll describes, but those with a result already.
func (s *Store) runAll(ctx context.Context, calls []*scriptCall) {
	var wg sync.WaitGroup
	for _, c := range calls {
		if c.cmd != nil {
			continue
		}
		keys := c.keys
		if c.decl != nil {
			keys = c.declared
		}
		if len(calls) == 1 {
			c.cmd = s.runIn(ctx, c.script, c.parts, keys, c.args...)
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.cmd = s.runIn(ctx, c.script, c.parts, keys, c.args...)
		}()
	}
	wg.Wait()
}
