// Package freeport reserves loopback TCP ports for servers that are told
// their port by number: child processes of tests and development tools,
// and servers restarted on the port they had.
//
// The usual way to find a free port, listening on port 0 and closing the
// listener before the server binds the number, is a race: Linux hands a
// port that was just closed to the next listen on port 0 (of any process)
// readily, so a test running beside others can find "its" port taken.
// A Port is instead held by a socket bound to it that never listens, with
// SO_REUSEADDR set. On Linux, while it is held:
//   - no listen on port 0 and no outgoing connection is given the port;
//   - a listener that asks for the port by number with SO_REUSEADDR set, as
//     Go's net.Listen and redis-server do, binds it and listens, again
//     and again (a restart), one listener at a time;
//   - while nothing listens on it, connections to it are refused: it is
//     also an address that stays unreachable.
package freeport

import (
	"fmt"
	"net"
	"strconv"
	"sync"
	"syscall"
)

// Port is a reserved port of 127.0.0.1. Release it when the server that
// uses it is gone for good.
type Port struct {
	num  int
	once sync.Once
	fd   int
	err  error
}

// Reserve reserves a free port of 127.0.0.1.
func Reserve() (*Port, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("freeport: socket: %w", err)
	}
	num, err := bindAny(fd)
	if err != nil {
		_ = syscall.Close(fd)
		return nil, err
	}
	return &Port{num: num, fd: fd}, nil
}

// bindAny binds fd, with SO_REUSEADDR, to a port of 127.0.0.1 the kernel
// picks, and returns the port.
func bindAny(fd int) (int, error) {
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		return 0, fmt.Errorf("freeport: setting SO_REUSEADDR: %w", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return 0, fmt.Errorf("freeport: binding a port of 127.0.0.1: %w", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		return 0, fmt.Errorf("freeport: getsockname: %w", err)
	}
	in4, ok := sa.(*syscall.SockaddrInet4)
	if !ok || in4.Port == 0 {
		return 0, fmt.Errorf("freeport: bound to %v, not a port of 127.0.0.1", sa)
	}
	return in4.Port, nil
}

// ReserveN returns n reserved ports; on an error it releases those it
// reserved.
func ReserveN(n int) ([]*Port, error) {
	ports := make([]*Port, 0, n)
	for range n {
		p, err := Reserve()
		if err != nil {
			for _, q := range ports {
				_ = q.Release()
			}
			return nil, err
		}
		ports = append(ports, p)
	}
	return ports, nil
}

// Num is the port number.
func (p *Port) Num() int { return p.num }

// Addr is "127.0.0.1:port".
func (p *Port) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.num)) }

// Release gives the port back. Releasing it again does nothing and
// returns the first call's result.
func (p *Port) Release() error {
	p.once.Do(func() {
		if err := syscall.Close(p.fd); err != nil {
			p.err = fmt.Errorf("freeport: releasing port %d: %w", p.num, err)
		}
	})
	return p.err
}
