package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tswgate/tswgate/proxy"
)

// smuggleLookalike holds an HTTP/1.1 header block with faulty framing:
// bytes that the framing watch of an HTTP/1.1 connection must notice, but
// that in an HTTP/2 stream are only a body.
const smuggleLookalike = "x\r\nPOST /v2/SshKey HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"

// TestE2EH2CBodyDoesNotPoisonTheConnection: behind a balancer speaking
// h2c, streams of many clients share one connection. A body that looks
// like faulty HTTP/1.1 framing is refused for what it is (not JSON), and
// must not get the other streams of the connection refused as
// invalid_framing: HTTP/2 has no such framing.
func TestE2EH2CBodyDoesNotPoisonTheConnection(t *testing.T) {
	for _, fast := range []string{"true", "false"} {
		t.Run("fast path "+fast, func(t *testing.T) { testH2CBody(t, "TSWGATE_FAST_PATH="+fast) })
	}
}

func testH2CBody(t *testing.T, env string) {
	up := MustStartUpstream(t, nil)
	g := MustStartGateway(t, up.URL, "TSWGATE_H2C=true", env)
	owner := g.MustCreateToken(t, testProject, "owner", "owner")
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	post := func(body io.Reader) *http.Request {
		req, err := http.NewRequest("POST", g.URL+"/v2/SshKey", body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+owner.Token)
		req.Header.Set("Content-Type", "application/json")
		return req
	}

	// A client's stream is open, its body still coming.
	pr, pw := io.Pipe()
	type result struct {
		resp *http.Response
		err  error
	}
	victim := make(chan result, 1)
	go func() {
		resp, err := client.Do(post(pr))
		victim <- result{resp, err}
	}()
	if _, err := pw.Write([]byte(`{"projectId":42,`)); err != nil {
		t.Fatal(err)
	}
	// Another client's stream on the same connection.
	resp, err := client.Do(post(strings.NewReader(`{"projectId":42}` + smuggleLookalike)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Proto != "HTTP/2.0" || resp.Header.Get(proxy.HeaderErrorCode) != "invalid_body" {
		t.Errorf("the look-alike body: %s %s %q, want invalid_body", resp.Proto, resp.Status, resp.Header.Get(proxy.HeaderErrorCode))
	}
	pw.Write([]byte(`"name":"k"}`))
	pw.Close()
	r := <-victim
	if r.err != nil {
		t.Fatalf("the other stream failed: %v", r.err)
	}
	r.resp.Body.Close()
	if code := r.resp.Header.Get(proxy.HeaderErrorCode); code != "" {
		t.Fatalf("the other stream was refused: %s %s", r.resp.Status, code)
	}
	// And a later stream.
	MustBeProxied(t, MustDo(t, client, MustNewRequest(t, "GET", g.URL+"/v2/Instance?ProjectId=42", owner.Token, nil)))
}
