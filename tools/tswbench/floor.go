package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
)

// floorBody and floorAnswer are the canned refusal of the Go floor: the
// shape and size of tswgate's answer to a flood (its fields, a JSON
// envelope), fixed in advance.
const floorBody = `{"success":false,"message":"Too many failed authentications from this address: retry after the time in Retry-After with a valid token.","code":"auth_rate_limited"}`

var floorAnswer = []byte("HTTP/1.1 429 Too Many Requests\r\n" +
	"X-Request-Id: 000000000000-000000\r\n" +
	"Content-Type: application/json; charset=utf-8\r\n" +
	"X-Content-Type-Options: nosniff\r\n" +
	"Cache-Control: no-store\r\n" +
	"X-Tsw-Error-Code: auth_rate_limited\r\n" +
	"Retry-After: 2\r\n" +
	"Content-Length: " + strconv.Itoa(len(floorBody)) + "\r\n" +
	"Date: Thu, 01 Jan 2026 00:00:00 GMT\r\n" +
	"\r\n" + floorBody)

// runFloor is the hidden subcommand "floor -addr ADDR [-relay UPSTREAM]":
// the least a Go server can do per request, on the standard net package
// with a goroutine per connection. It parses no HTTP. Without -relay it
// reads until the end of each request head and writes the canned
// refusal (the floor of the flood); with -relay it pairs each client
// connection with its own upstream connection and copies bytes both ways
// (the floor of proxying a valid request). Its CPU time per request is the
// floor of any Go front end on this machine, beside nginx's.
func runFloor(args []string) error {
	fs := flag.NewFlagSet("floor", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "loopback `address` to listen on")
	relay := fs.String("relay", "", "upstream `host:port` (loopback) to relay to, instead of refusing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkLoopbackAddr(*addr); err != nil {
		return fmt.Errorf("-addr: %w", err)
	}
	serve := serveFloor
	if *relay != "" {
		if err := checkLoopbackAddr(*relay); err != nil {
			return fmt.Errorf("-relay: %w", err)
		}
		serve = func(c net.Conn) { relayFloor(c, *relay) }
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Printf("%s%s\n", readyPrefix, ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		go serve(c)
	}
}

// relayFloor copies bytes between c and a new connection to upstream,
// both ways, until either side ends.
func relayFloor(c net.Conn, upstream string) {
	defer c.Close()
	up, err := net.Dial("tcp", upstream)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(c, up)
		c.Close()
		close(done)
	}()
	_, _ = io.Copy(up, c)
	up.Close()
	<-done
}

// serveFloor answers every request head on c with floorAnswer until c
// ends. Requests must have no body (the flood's do not).
func serveFloor(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 16<<10)
	n := 0
	for {
		m, err := c.Read(buf[n:])
		if err != nil {
			return
		}
		n += m
		for {
			i := bytes.Index(buf[:n], []byte("\r\n\r\n"))
			if i < 0 {
				break
			}
			n = copy(buf, buf[i+4:n])
			if _, err := c.Write(floorAnswer); err != nil {
				return
			}
		}
		if n == len(buf) {
			return // a head larger than the buffer: not the flood's
		}
	}
}
