package proxy

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// BufferedWriter buffers writes to w and flushes them at least every
// interval, when the buffer fills, and on Close, so that a log written on
// every request costs a memory copy rather than a system call. A line is
// never split across flushes unless it is larger than the buffer. It is
// safe for concurrent use.
type BufferedWriter struct {
	mu     sync.Mutex
	bw     *bufio.Writer
	closed bool
	stop   chan struct{}
	done   chan struct{}
}

// NewBufferedWriter returns a BufferedWriter of size bytes (default 64 KiB)
// on w, flushed every interval (default 100ms) until Close.
func NewBufferedWriter(w io.Writer, size int, interval time.Duration) *BufferedWriter {
	if size <= 0 {
		size = 64 << 10
	}
	if interval <= 0 {
		interval = 100 * time.Millisecond
	}
	b := &BufferedWriter{bw: bufio.NewWriterSize(w, size), stop: make(chan struct{}), done: make(chan struct{})}
	go b.flushEvery(interval)
	return b
}

func (b *BufferedWriter) flushEvery(interval time.Duration) {
	defer close(b.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			_ = b.Flush()
		}
	}
}

// Write buffers p. After Close it writes through.
func (b *BufferedWriter) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bw.Available() < len(p) && b.bw.Buffered() > 0 {
		// Keep lines whole: flush what is buffered before this one.
		if err := b.bw.Flush(); err != nil {
			return 0, err
		}
	}
	n, err := b.bw.Write(p)
	if err == nil && b.closed {
		err = b.bw.Flush()
	}
	return n, err
}

// Flush writes out what is buffered.
func (b *BufferedWriter) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bw.Flush()
}

// Close stops the periodic flush and flushes. Later writes go straight
// through. Close is idempotent.
func (b *BufferedWriter) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	close(b.stop)
	<-b.done
	return b.Flush()
}
