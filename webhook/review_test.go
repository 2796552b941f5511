package webhook

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The default schedule: each delay in the upper half of its doubling
// step, capped at an hour, and DefaultMaxAttempts attempts spread over
// 2¾ to 5½ hours, as docs/webhooks.md says.
func TestDefaultBackoffBounds(t *testing.T) {
	var lo, hi time.Duration
	step := DefaultBackoff.Initial
	for n := 1; n < DefaultMaxAttempts; n++ {
		for range 50 {
			if d := DefaultBackoff.Delay(n); d < step/2 || d > step {
				t.Fatalf("Delay(%d) = %s, want within [%s, %s]", n, d, step/2, step)
			}
		}
		lo, hi = lo+step/2, hi+step
		step = min(2*step, DefaultBackoff.Max)
	}
	if lo < 2*time.Hour+40*time.Minute || hi > 5*time.Hour+30*time.Minute {
		t.Errorf("retries span %s to %s, want within 2h40m to 5h30m", lo, hi)
	}
}

// A receiver that answers 2xx with an endless body is read up to
// maxResponseRead, then its connection is dropped: the attempt is
// delivered and the gateway does not read on until its timeout.
func TestResponseBodyIsBounded(t *testing.T) {
	q := fileQueue(t, "", FileQueueOptions{})
	secret, _ := NewSecret()
	var written atomic.Int64
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		chunk := make([]byte, 32<<10)
		for {
			n, err := w.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	}))
	t.Cleanup(srv.Close)
	reg, _, pub := setup(t, q, srv.URL, secret)
	publishN(t, pub, 1)
	obs := newAttempts()
	runDispatcher(t, DispatcherOptions{Queue: q, Endpoints: reg, Observer: obs, MaxAttempts: 1,
		Client: NewClient(ClientOptions{AllowPrivate: true, Timeout: time.Hour})})
	waitStates(t, obs, StateDelivered, 1)
	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatal("the gateway kept reading the response")
	}
	if n := written.Load(); n > 64<<20 {
		t.Errorf("the receiver wrote %d bytes before the gateway hung up", n)
	}
}

// The dispatcher's log lines of failed attempts — an error status, a
// refused connection — name the delivery and endpoint, never the
// endpoint's secret or its URL's query (a receiver's credential).
func TestDispatcherLogsNoSecret(t *testing.T) {
	q := fileQueue(t, "", FileQueueOptions{})
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(failing.Close)
	const cred = "receiver-credential-7f3a"
	secret, _ := NewSecret()
	reg, ep, pub := setup(t, q, failing.URL+"/hook?key="+cred, secret)
	down, err := NewEndpoint(42, "http://"+reservePort(t)+"/hook?key="+cred, nil, time.Now())
	if err == nil {
		down.Secret = secret
		err = reg.Put(context.Background(), down)
	}
	if err != nil {
		t.Fatal(err)
	}
	if n, err := pub.Publish(context.Background(), Event{Type: TypeTokenCreated, ProjectID: 42}); err != nil || n != 2 {
		t.Fatalf("Publish = %d, %v; want 2", n, err)
	}
	var logs lockedLog
	obs := newAttempts()
	runDispatcher(t, DispatcherOptions{Queue: q, Endpoints: reg, Observer: obs, MaxAttempts: 1,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	waitStates(t, obs, StateDead, 2)
	out := logs.String()
	if !strings.Contains(out, ep.ID) || !strings.Contains(out, down.ID) {
		t.Errorf("want a line per failed attempt:\n%s", out)
	}
	for _, s := range []string{cred, secret, strings.TrimPrefix(secret, SecretPrefix)} {
		if strings.Contains(out, s) {
			t.Errorf("the log holds %q:\n%s", s, out)
		}
	}
}

// lockedLog is a log sink safe for concurrent writers.
type lockedLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
