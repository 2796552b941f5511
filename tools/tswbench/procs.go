package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
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

// clockTick is the unit of the CPU times in /proc/PID/stat (USER_HZ,
// 100 per second on every Linux architecture Go supports).
const clockTick = 10 * time.Millisecond

// cpuTime returns the user plus system CPU time process pid has used, from
// /proc/PID/stat.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseCPUTime(string(b))
}

// parseCPUTime reads utime and stime (fields 14 and 15) from the text of
// /proc/PID/stat. The command name (field 2) is in parentheses and may
// hold spaces, so fields count from the last ")".
func parseCPUTime(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc stat %q: no command name", stat)
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3, the state
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat %q: too few fields", stat)
	}
	var sum int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc stat: %w", err)
		}
		sum += n
	}
	return time.Duration(sum) * clockTick, nil
}
