package testredis

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Command is one command a Redis ran, as MONITOR reports it.
type Command struct {
	// Lua is true for a command a script ran ("[0 lua]"), false for one a
	// client sent.
	Lua bool
	// Args is the command's name and arguments, unquoted.
	Args []string
}

// Monitor records the commands the server runs (MONITOR) from now until the
// returned stop function is called; stop returns them in order, every
// command run before stop was called included. The recording ends with the
// test at the latest.
func (s *Server) Monitor(tb testing.TB) (stop func() []Command) {
	tb.Helper()
	conn, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
	if err != nil {
		tb.Fatalf("testredis: monitor: %v", err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	r := bufio.NewReaderSize(conn, 1<<20)
	if _, err := conn.Write([]byte("MONITOR\r\n")); err != nil {
		tb.Fatalf("testredis: monitor: %v", err)
	}
	if line, err := r.ReadString('\n'); err != nil || line != "+OK\r\n" {
		tb.Fatalf("testredis: monitor: %q %v", line, err)
	}
	type result struct {
		cmds []Command
		err  error
	}
	marker := make([]byte, 8)
	_, _ = rand.Read(marker)
	end := "testredis-monitor-end-" + hex.EncodeToString(marker)
	done := make(chan result, 1)
	go func() {
		var cmds []Command
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				done <- result{cmds, err}
				return
			}
			c, err := parseMonitorLine(strings.TrimRight(line, "\r\n"))
			if err != nil {
				done <- result{cmds, err}
				return
			}
			if len(c.Args) == 2 && strings.EqualFold(c.Args[0], "echo") && c.Args[1] == end {
				done <- result{cmds, nil}
				return
			}
			cmds = append(cmds, c)
		}
	}()
	return func() []Command {
		tb.Helper()
		c := redis.NewClient(&redis.Options{Addr: s.Addr})
		defer c.Close()
		if err := c.Echo(context.Background(), end).Err(); err != nil {
			tb.Fatalf("testredis: monitor: %v", err)
		}
		select {
		case res := <-done:
			if res.err != nil {
				tb.Fatalf("testredis: monitor: %v", res.err)
			}
			_ = conn.Close()
			return res.cmds
		case <-time.After(10 * time.Second):
			tb.Fatalf("testredis: monitor: the end marker did not come back in 10 s")
			return nil
		}
	}
}

// parseMonitorLine parses a line of MONITOR's output:
//
//	1796049355.231615 [0 lua] "SET" "a" "1"
//
// The arguments are quoted as Redis's sdscatrepr quotes them (\\, \", \n,
// \r, \t, \a, \b and \xHH escapes).
func parseMonitorLine(line string) (Command, error) {
	open := strings.IndexByte(line, '[')
	closing := strings.Index(line, "] ")
	if open < 0 || closing < open {
		return Command{}, fmt.Errorf("monitor line %q", line)
	}
	c := Command{Lua: strings.HasSuffix(line[open:closing], " lua")}
	rest := line[closing+2:]
	for rest != "" {
		if rest[0] != '"' {
			return Command{}, fmt.Errorf("monitor line %q: argument at %q", line, rest)
		}
		var b strings.Builder
		i := 1
		for ; i < len(rest) && rest[i] != '"'; i++ {
			if rest[i] != '\\' {
				b.WriteByte(rest[i])
				continue
			}
			i++
			if i >= len(rest) {
				return Command{}, errors.New("monitor line ends in an escape")
			}
			switch rest[i] {
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'a':
				b.WriteByte('\a')
			case 'b':
				b.WriteByte('\b')
			case 'x':
				if i+2 >= len(rest) {
					return Command{}, errors.New("monitor line ends in a \\x escape")
				}
				v, err := strconv.ParseUint(rest[i+1:i+3], 16, 8)
				if err != nil {
					return Command{}, fmt.Errorf("monitor line: %w", err)
				}
				b.WriteByte(byte(v))
				i += 2
			default:
				b.WriteByte(rest[i])
			}
		}
		if i >= len(rest) {
			return Command{}, fmt.Errorf("monitor line %q: unterminated argument", line)
		}
		c.Args = append(c.Args, b.String())
		rest = strings.TrimPrefix(rest[i+1:], " ")
	}
	return c, nil
}
