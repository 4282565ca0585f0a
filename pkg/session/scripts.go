package session

import (
	"embed"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/pkg/bus"
)

// The Lua scripts live in lua/*.lua (lua/lib.lua documents their
// conventions). Each script runs as three parts: a header rendered here
// from Go, lua/lib.lua, and the script's own file.
//
//go:embed lua/*.lua
var luaFiles embed.FS

// luaKeyHelpers are the bus.KeyPatterns the scripts name keys or channels
// with (k_<name>), for keys known only once a script read data: a session
// named by an effect or the reaper, the namespace and room sets of a
// session being ended, the channel of the gateway holding a stream.
var luaKeyHelpers = []string{"s", "mb", "ns", "rooms", "acks", "kick", "cf", "sig",
	"nsm", "nsp", "room", "roomp", "gwss", "gw", "bcast"}

// luaHeader is the Lua every script starts with, rendered from the Go that
// owns each name and number in it:
//
//   - P, NOW, NODE: ARGV[1..3] as Store.args passes them (the key prefix,
//     the time in unix ms, the node id of the gateway or worker running
//     the script); script arguments start at ARGV[4];
//   - MB_DEFAULT, MB_WAIT_DEFAULT, MB_HARD: the mailbox bounds of sessions
//     created before they were written into the session (mxb, mxw), from
//     DefaultMailboxBytes, DefaultMailboxDrainTimeout and MailboxHardFactor;
//   - SIGNAL_VERSION, SIGNAL_FIELD, GROUP: bus.SchemaVersion,
//     bus.SignalField and bus.GroupName;
//   - k_<name>(part): the key or channel of bus.KeyPatterns <name>, P .. Head
//     .. part .. Tail (no argument for a single name);
//   - room_member(ns, room): bus.RoomMember.
var luaHeader = renderLuaHeader()

func renderLuaHeader() string {
	var b strings.Builder
	b.WriteString("-- Rendered by pkg/session/scripts.go from the Go constants and bus.Keys.\n")
	b.WriteString("local P, NOW, NODE = ARGV[1], ARGV[2], ARGV[3]\n")
	fmt.Fprintf(&b, "local MB_DEFAULT, MB_WAIT_DEFAULT, MB_HARD = %d, %d, %d\n",
		DefaultMailboxBytes, DefaultMailboxDrainTimeout.Milliseconds(), MailboxHardFactor)
	fmt.Fprintf(&b, "local SIGNAL_VERSION, SIGNAL_FIELD, GROUP = %s, %s, %s\n",
		luaString(bus.SchemaVersion), luaString(bus.SignalField), luaString(bus.GroupName))
	patterns := map[string]bus.KeyPattern{}
	for _, p := range bus.KeyPatterns() {
		patterns[p.Name] = p
	}
	for _, name := range luaKeyHelpers {
		p, ok := patterns[name]
		if !ok {
			panic("session: no key pattern " + name)
		}
		if p.Part == "" {
			fmt.Fprintf(&b, "local function k_%s() return P .. %s end\n", name, luaString(p.Head+p.Tail))
			continue
		}
		tail := ""
		if p.Tail != "" {
			tail = " .. " + luaString(p.Tail)
		}
		fmt.Fprintf(&b, "local function k_%s(v) return P .. %s .. v%s end\n", name, luaString(p.Head), tail)
	}
	fmt.Fprintf(&b, "local function room_member(ns, room) return ns .. %s .. room end\n", luaString(bus.RoomSeparator))
	return b.String()
}

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

// luaScript assembles the script in lua/<name>.lua.
func luaScript(name string) *redis.Script {
	return redis.NewScript(luaSource(name))
}

func luaSource(name string) string {
	lib, err := luaFiles.ReadFile("lua/lib.lua")
	if err != nil {
		panic(err)
	}
	src, err := luaFiles.ReadFile("lua/" + name + ".lua")
	if err != nil {
		panic(err)
	}
	return luaHeader + string(lib) + string(src)
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
	ackScript           = luaScript("ack")
)

// sessionKeys returns the KEYS of a script on session sid (lua/lib.lua):
// the deadlines set, the session's keys in the order own() takes them, its
// partition stream, then extra.
func (s *Store) sessionKeys(sid string, extra ...string) []string {
	k := s.cfg.Keys
	keys := make([]string, 0, 9+len(extra))
	keys = append(keys, k.Deadlines(), k.Session(sid), k.Mailbox(sid), k.SessionNamespaces(sid),
		k.SessionRooms(sid), k.Acks(sid), k.Kick(sid), k.Confirmed(sid), k.StreamFor(sid))
	return append(keys, extra...)
}
