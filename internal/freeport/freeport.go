// Package freeport finds free loopback TCP ports for servers that tests and
// the benchmark start as processes.
package freeport

import "net"

// Loopback returns a TCP port on 127.0.0.1 that was free a moment ago.
func Loopback() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
