package webhook

import (
	"context"
	"strings"
	"testing"
	"time"
)

// Hosts that some parser or resolver reads as an IPv4 address, or reads
// differently from Go's URL parser, are refused when an endpoint is made,
// whoever owns it, with the field and the fix named.
func TestEndpointURLHostForms(t *testing.T) {
	for _, c := range []struct {
		url string
		ok  bool
	}{
		{"https://hooks.example.com/tsw", true},
		{"https://HOOKS.Example.COM:8443/tsw", true},
		{"https://a-b_c.example.com/", true},
		{"https://8.8.8.8/", true},
		{"https://8.8.8.8:443/", true},
		{"https://[2001:4860:4860::8888]/", true},
		{"https://[2001:4860:4860::8888]:8443/", true},
		{"http://alertmanager:9093/", true},
		{"https://xn--bcher-kva.example/", true},

		{"https://127.1/", false},
		{"https://2130706433/", false},
		{"https://0x7f.1/", false},
		{"https://0x7f000001/", false},
		{"https://0177.0.0.1/", false},
		{"https://0177.1/", false},
		{"https://127.0.0.1./", false},
		{"https://8.8.8.8./", false},
		{"https://08.8.8.8/", false},
		{"https://1.2.3.4.5/", false},
		{"https://hooks.example.com./", false},
		{"https://hooks..example.com/", false},
		{"https://hooks.example.123/", false},
		{"https://-hooks.example.com/", false},
		{"https://%31%32%37.0.0.1/", false},
		{"https://hooks%2eexample.com/", false},
		{"https://[fe80::1%25eth0]/", false},
		{"https://[2001:4860:4860::8888%25eth0]/", false},
		{"https://[::ffff:127.0.0.1]/", false},
		{"https://[::ffff:8.8.8.8]/", false},
		{"https://[::ffff:7f00:1]/", false},
		{"https://ｅxample.com/", false},
		{"https://１２７.０.０.１/", false},
		{"https://hooks.example.com:0/", false},
		{"https://hooks.example.com:0443/", false},
		{"https://hooks.example.com:65536/", false},
		{"https://" + strings.Repeat("a", 64) + ".example.com/", false},
	} {
		_, err := NewEndpoint(42, c.url, nil, time.Now())
		if (err == nil) != c.ok {
			t.Errorf("%s: %v, want ok %v", c.url, err, c.ok)
			continue
		}
		if err != nil && (!strings.HasPrefix(err.Error(), "url: ") || strings.Count(err.Error(), "\n") > 0) {
			t.Errorf("%s: %q, want one problem naming url", c.url, err)
		}
	}
	_, err := NewEndpoint(0, "http://127.1:8080/", nil, time.Now())
	if err == nil || !strings.Contains(err.Error(), "dotted-quad") {
		t.Errorf("operator endpoint at 127.1: %v, want the fix named", err)
	}
}

// storedEndpoints serves one endpoint as stored, unchecked (as one saved
// before the host rules were).
type storedEndpoints struct{ e *Endpoint }

func (s storedEndpoints) Get(context.Context, string) (*Endpoint, error) {
	c := *s.e
	return &c, nil
}

// An endpoint stored with a host form the rules now refuse is not posted
// to: the attempt fails naming the url problem, whatever the resolver or
// the client would make of the host.
func TestDispatcherRechecksStoredURL(t *testing.T) {
	q := fileQueue(t, "", FileQueueOptions{})
	rcv := newReceiver(t)
	_, ep, pub := setup(t, q, rcv.srv.URL, rcv.secret)
	publishN(t, pub, 1)
	stored := *ep
	stored.URL = strings.Replace(rcv.srv.URL, "127.0.0.1", "127.1", 1)
	obs := newAttempts()
	runDispatcher(t, DispatcherOptions{Queue: q, Endpoints: storedEndpoints{&stored}, Observer: obs, MaxAttempts: 1})
	obs.waitUntil(t, "the attempt", func(a attemptNote) bool {
		if a.state != StateDead || !strings.Contains(a.attempt.Error, "url: host \"127.1\"") {
			t.Errorf("attempt to %s: %s %q, want dead naming the url", stored.URL, a.state, a.attempt.Error)
		}
		return true
	})
	select {
	case m := <-rcv.got:
		t.Errorf("the receiver got %s", m)
	default:
	}
}

// A refused host is quoted short and escaped in the error.
func TestHostErrorQuotesShort(t *testing.T) {
	long := strings.Repeat("1", 300)
	_, err := NewEndpoint(42, "https://"+long+"/", nil, time.Now())
	if err == nil || len(err.Error()) > 300 || strings.Contains(err.Error(), long[:100]) {
		t.Errorf("error for a 300-byte numeric host: %v", err)
	}
}
