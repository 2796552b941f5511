package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// responseSeeds are answers of the shapes the quick reader takes, and of
// those it must leave to http.ReadResponse.
var responseSeeds = []string{
	"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
	"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
	"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhel",
	"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n",
	"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n",
	"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 404 Not Found\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nContent-Length: 3\r\n\r\nabcdef",
	"HTTP/1.1 200 OK\r\nX-Space:   padded  \r\nX-Tab:\tv\t\r\nContent-Length: 1 \r\n\r\nx",
	"HTTP/1.1 200 OK\r\nContent-Length: 01\r\n\r\nx",
	"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\nx",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\n\r\nunbounded",
	"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1 200 OK\nContent-Length: 1\n\nx",
	"HTTP/1.1 200 OK\r\nA: b\n\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1 200 OK\r\nX: caf\xc3\xa9\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\n Folded: x\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nX: a\r\n continued\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nPragma: no-cache\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nConnection: close, te\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nConnection: CLOSE\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\nx",
	"HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",
	"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 099 Low\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1  200 OK\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nbody",
	"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n",
}

// FuzzReadResponse holds the quick reader to http.ReadResponse: whatever
// it accepts must be read the same (status, fields, framing, body, and
// what is left on the connection after it); whatever it declines it must
// leave unread.
func FuzzReadResponse(f *testing.F) {
	for _, s := range responseSeeds {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(checkQuickReader)
}

// checkQuickReader fails t unless the quick reader either leaves data
// unread or reads it as http.ReadResponse does (the answer to a HEAD
// request when head is set): status, fields, framing, body, and what is
// left on the connection after it.
func checkQuickReader(t *testing.T, data []byte, head bool) {
	method := http.MethodGet
	if head {
		method = http.MethodHead
	}
	req, _ := http.NewRequest(method, "http://upstream/v2/Instance", nil)
	quick := bufio.NewReaderSize(bytes.NewReader(data), 4<<10)
	got := quickResponse(quick, req)
	if got == nil {
		if rest, _ := io.ReadAll(quick); !bytes.Equal(rest, data) {
			t.Fatalf("declined but consumed: left %q of %q", rest, data)
		}
		return
	}
	std := bufio.NewReaderSize(bytes.NewReader(data), 4<<10)
	want, err := http.ReadResponse(std, req)
	if err != nil {
		t.Fatalf("quick reader accepted what net/http refuses (%v): %q", err, data)
	}
	compareResponses(t, got, want, data)
	gotRest, _ := io.ReadAll(quick)
	wantRest, _ := io.ReadAll(std)
	if !bytes.Equal(gotRest, wantRest) {
		t.Fatalf("left on the connection: %q, net/http %q; input %q", gotRest, wantRest, data)
	}
}

// compareResponses fails t unless got and want agree in everything the
// proxy reads of a response, bodies included.
func compareResponses(t *testing.T, got, want *http.Response, data []byte) {
	t.Helper()
	type view struct {
		Status                 string
		StatusCode             int
		Proto                  string
		ProtoMajor, ProtoMinor int
		Header                 http.Header
		ContentLength          int64
		Close, Uncompressed    bool
		TransferEncoding       []string
		Trailer                http.Header
		NoBody                 bool
	}
	v := func(r *http.Response) view {
		return view{r.Status, r.StatusCode, r.Proto, r.ProtoMajor, r.ProtoMinor, r.Header, r.ContentLength,
			r.Close, r.Uncompressed, r.TransferEncoding, r.Trailer, r.Body == http.NoBody}
	}
	if g, w := v(got), v(want); !reflect.DeepEqual(g, w) {
		t.Fatalf("read differently:\n quick   %+v\n net/http %+v\ninput %q", g, w, data)
	}
	gb, gerr := io.ReadAll(got.Body)
	wb, werr := io.ReadAll(want.Body)
	if !bytes.Equal(gb, wb) || (gerr == nil) != (werr == nil) {
		t.Fatalf("bodies differ: quick %q (%v), net/http %q (%v); input %q", gb, gerr, wb, werr, data)
	}
}

func TestReadResponseSeeds(t *testing.T) {
	accepted := 0
	for _, s := range responseSeeds {
		req, _ := http.NewRequest(http.MethodGet, "http://upstream/", nil)
		br := bufio.NewReaderSize(strings.NewReader(s), 4<<10)
		resp, err := readResponse(br, req)
		std, stdErr := http.ReadResponse(bufio.NewReaderSize(strings.NewReader(s), 4<<10), req)
		if (err == nil) != (stdErr == nil) {
			t.Errorf("%q: error %v, net/http %v", s, err, stdErr)
			continue
		}
		if err != nil {
			continue
		}
		if quickResponse(bufio.NewReaderSize(strings.NewReader(s), 4<<10), req) != nil {
			accepted++
		}
		compareResponses(t, resp, std, []byte(s))
	}
	if accepted < 10 {
		t.Errorf("the quick reader took %d of the seeds; the common shapes should be its", accepted)
	}
}

func TestReadResponseHeadTooLargeForBuffer(t *testing.T) {
	s := "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", 5000) + "\r\nContent-Length: 1\r\n\r\nx"
	req, _ := http.NewRequest(http.MethodGet, "http://upstream/", nil)
	br := bufio.NewReaderSize(strings.NewReader(s), 4<<10)
	if quickResponse(br, req) != nil {
		t.Fatal("a head larger than the buffer was taken by the quick reader")
	}
	resp, err := readResponse(br, req)
	if err != nil || len(resp.Header.Get("X-Big")) != 5000 {
		t.Fatalf("fallback: %v", err)
	}
}

func BenchmarkReadResponse(b *testing.B) {
	const answer = "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n" +
		"Date: Thu, 03 Dec 2026 15:12:29 GMT\r\nServer: Kestrel\r\nContent-Length: 512\r\n" +
		"X-Request-Id: 0HN1234567890ABCDEF\r\nStrict-Transport-Security: max-age=31536000\r\n" +
		"Vary: Accept-Encoding\r\n\r\n"
	full := answer + strings.Repeat("x", 512)
	req, _ := http.NewRequest(http.MethodGet, "http://upstream/v2/Instance", nil)
	for _, tc := range []struct {
		name string
		read func(*bufio.Reader, *http.Request) (*http.Response, error)
	}{{"quick", readResponse}, {"net-http", http.ReadResponse}} {
		b.Run(tc.name, func(b *testing.B) {
			sr := strings.NewReader(full)
			br := bufio.NewReaderSize(sr, 4<<10)
			b.ReportAllocs()
			for b.Loop() {
				sr.Reset(full)
				br.Reset(sr)
				resp, err := tc.read(br, req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
			}
		})
	}
}

// A head that arrives a byte at a time is still read by the quick reader,
// and the body after it is the body.
func TestReadResponseHeadInPieces(t *testing.T) {
	const s = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}next"
	req, _ := http.NewRequest(http.MethodGet, "http://upstream/", nil)
	br := bufio.NewReaderSize(iotest.OneByteReader(strings.NewReader(s)), 4<<10)
	resp := quickResponse(br, req)
	if resp == nil {
		t.Fatal("declined a head that arrived in pieces")
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil || string(body) != "{}" || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("body %q, %v, header %v", body, err, resp.Header)
	}
	if rest, _ := io.ReadAll(br); string(rest) != "next" {
		t.Fatalf("left %q on the connection", rest)
	}
}

// FuzzReadResponseBuilt is FuzzReadResponse on answers built from parts,
// so that most are of the shapes the quick reader takes: a status, fields
// from a list of names (framing fields among them) with fuzzed values and
// separators, a body, and bytes after it.
func FuzzReadResponseBuilt(f *testing.F) {
	f.Add(uint16(200), "OK", []byte{0, 1, 2}, "application/json", "5", "hello", "next", false)
	f.Add(uint16(204), "", []byte{3, 4}, "close", "0", "", "", true)
	f.Add(uint16(100), "Continue", []byte{}, "", "", "", "HTTP/1.1 200 OK\r\n\r\n", false)
	f.Add(uint16(304), "Not Modified", []byte{5, 6, 7, 8}, " x ", "01", "ab", "", false)
	f.Fuzz(func(t *testing.T, code uint16, reason string, picks []byte, value, length, body, after string, head bool) {
		var b strings.Builder
		fmt.Fprintf(&b, "HTTP/1.1 %03d %s\r\n", code%1000, reason)
		for i, p := range picks {
			if i >= 12 {
				break
			}
			name := builtNames[int(p)%len(builtNames)]
			sep := [...]string{": ", ":", ":\t", " : "}[int(p>>4)%4]
			v := value
			if name == "Content-Length" {
				v = length
			}
			b.WriteString(name + sep + v + "\r\n")
		}
		b.WriteString("\r\n" + body + after)
		checkQuickReader(t, []byte(b.String()), head)
	})
}

// builtNames are the field names FuzzReadResponseBuilt picks from.
var builtNames = [...]string{
	"Content-Type", "Content-Length", "Connection", "Date", "Server", "Set-Cookie", "set-cookie",
	"content-length", "Transfer-Encoding", "Trailer", "Pragma", "X-Request-Id", "Vary", "CONNECTION",
	"Keep-Alive", "X_Odd", "Cache-Control",
}
