package main

import (
	"errors"
	"os/exec"
	"strconv"
)

// pinner pins the benchmark's child processes to CPUs with taskset.
type pinner struct {
	pin     bool   // wrap commands in taskset
	taskset string // path of taskset when pin is set
}

// newPinner returns a pinner that pins children when pin is set (taskset
// must be on PATH then).
func newPinner(pin bool) (pinner, error) {
	p := pinner{pin: pin}
	if pin {
		ts, err := exec.LookPath("taskset")
		if err != nil {
			return p, errors.New("taskset is not installed (Debian package util-linux); it pins the servers and the load generator to CPUs")
		}
		p.taskset = ts
	}
	return p, nil
}

// command returns argv, prefixed with `taskset -c cpu` when pinning.
func (p pinner) command(cpu int, argv []string) []string {
	if !p.pin {
		return argv
	}
	return append([]string{p.taskset, "-c", strconv.Itoa(cpu)}, argv...)
}
