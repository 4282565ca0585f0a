package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// wsEchoScenario is the echo scenario without Socket.IO: N plain websocket
// clients (on -url with ws:// for http://) each send a message holding a
// counter and wait for it to come back, in a closed loop; acks/s and RTT
// percentiles as echo reports them. It measures a bare websocket echo
// server (cmd/wsecho), the ceiling the Socket.IO servers are compared with.
func wsEchoScenario(ctx context.Context, c config) (Result, error) {
	var errs atomic.Int64
	conns := make([]*websocket.Conn, 0, c.clients)
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, c.concurrency)
	for i := range c.clients {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			u := c.urls[i%len(c.urls)]
			u = "ws" + strings.TrimPrefix(u, "http") + "/"
			dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			conn, _, err := websocket.DefaultDialer.DialContext(dctx, u, nil)
			if err != nil {
				errs.Add(1)
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(conns) == 0 {
		return Result{}, errors.New("no client connected")
	}
	defer func() {
		for _, conn := range conns {
			conn.Close()
		}
	}()
	rctx, cancel := context.WithTimeout(ctx, c.duration)
	defer cancel()
	var ops atomic.Int64
	rtts := make([][]time.Duration, len(conns))
	stopProgress := progress("ws-echo", func() string { return fmt.Sprintf("%d echoes, %d errors", ops.Load(), errs.Load()) })
	start := time.Now()
	for i, conn := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			go func() { <-rctx.Done(); _ = conn.SetReadDeadline(time.Now()) }() // end a read in flight
			for n := 0; rctx.Err() == nil; n++ {
				t0 := time.Now()
				want := strconv.Itoa(n)
				if err := conn.WriteMessage(websocket.TextMessage, []byte(want)); err != nil {
					errs.Add(1)
					return
				}
				_, got, err := conn.ReadMessage()
				if err != nil {
					if rctx.Err() == nil {
						errs.Add(1)
					}
					return
				}
				if string(got) != want {
					errs.Add(1)
					continue
				}
				rtts[i] = append(rtts[i], time.Since(t0))
				ops.Add(1)
			}
		}()
	}
	wg.Wait()
	stopProgress()
	return closedLoop(len(conns), errs.Load(), ops.Load(), time.Since(start), rtts), nil
}
