package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
)

// netHTTPRequest is a request as net/http's server reads it from a stream:
// its head's bounds, its body's end, and whether its framing is one the
// watch must refuse.
type netHTTPRequest struct {
	start, end, bodyEnd int64
	refuse              bool
	bodyErr             bool // reading the body failed
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// readAsNetHTTP reads data as net/http's server reads a connection: heads
// with http.ReadRequest on a reader of its buffer size, each body to its
// end, the CR or LF bytes it skips after a POST, and its refusals of
// unsupported versions and invalid field names. err is nil when the
// stream ends cleanly (at a request's end, or at HTTP/2's preface, after
// which the server reads no HTTP/1 request); stop is where it ends.
func readAsNetHTTP(data []byte) (reqs []netHTTPRequest, stop int64, err error) {
	cr := &countingReader{r: bytes.NewReader(data)}
	br := bufio.NewReaderSize(cr, 4096) // net/http's server's
	at := func() int64 { return cr.n - int64(br.Buffered()) }
	lastMethod := ""
	for {
		if lastMethod == "POST" {
			peek, _ := br.Peek(4)
			n := 0
			for n < len(peek) && (peek[n] == '\r' || peek[n] == '\n') {
				n++
			}
			_, _ = br.Discard(n)
		}
		start := at()
		req, err := http.ReadRequest(br)
		if err != nil {
			if errors.Is(err, io.EOF) && at() == start && start == int64(len(data)) {
				return reqs, start, nil
			}
			return reqs, start, fmt.Errorf("reading a head at %d: %w", start, err)
		}
		end := at()
		if err := serverRefuses(req); err != nil {
			return reqs, start, err
		}
		if req.Method == "PRI" && len(req.Header) == 0 && req.URL.Path == "*" && req.Proto == "HTTP/2.0" {
			return reqs, end, nil // HTTP/2 with prior knowledge: the server closes or switches
		}
		refuse, err := faultyHead(data[start:end])
		if err != nil {
			return reqs, start, err
		}
		r := netHTTPRequest{start: start, end: end, refuse: refuse}
		_, err = io.Copy(io.Discard, req.Body)
		r.bodyEnd, r.bodyErr = at(), err != nil
		reqs = append(reqs, r)
		if err != nil {
			return reqs, end, fmt.Errorf("reading the body at %d: %w", end, err)
		}
		lastMethod = req.Method
	}
}

// serverRefuses returns the error for what net/http's server refuses
// after http.ReadRequest: other versions than HTTP/1 (but HTTP/2's
// preface), invalid field names.
func serverRefuses(req *http.Request) error {
	if req.ProtoMajor != 1 && !(req.ProtoMajor == 2 && req.ProtoMinor == 0 && req.Method == "PRI" && req.RequestURI == "*") {
		return errors.New("unsupported protocol version")
	}
	for k := range req.Header {
		for i := 0; i < len(k); i++ {
			if !isTokenByte(k[i]) {
				return errors.New("invalid header name")
			}
		}
	}
	return nil
}

// faultyHead reports, from a head's bytes as net/textproto reads them
// (before net/http removes framing fields), whether its framing is faulty:
// Transfer-Encoding on HTTP/1.0 or with Content-Length.
func faultyHead(head []byte) (bool, error) {
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(head)))
	line, err := tp.ReadLine()
	if err != nil {
		return false, err
	}
	h, err := tp.ReadMIMEHeader()
	if err != nil {
		return false, fmt.Errorf("rereading %q: %w", head, err)
	}
	_, rest, _ := strings.Cut(line, " ")
	_, proto, _ := strings.Cut(rest, " ")
	major, minor, _ := http.ParseHTTPVersion(proto)
	atLeast11 := major > 1 || major == 1 && minor >= 1
	return len(h["Transfer-Encoding"]) > 0 && (!atLeast11 || len(h["Content-Length"]) > 0), nil
}

// watchStream feeds data to a watch byte by byte, and returns the heads it
// judged and how many bytes it had been fed when it marked the stream
// faulty (-1: never).
func watchStream(data []byte) (heads [][2]int64, faultyAt int64) {
	w := &framingWatch{}
	w.trace = func(start, end int64) { heads = append(heads, [2]int64{start, end}) }
	faultyAt = -1
	for i := range data {
		if w.feed(data[i:i+1]) && faultyAt < 0 {
			faultyAt = int64(i) + 1
		}
	}
	return heads, faultyAt
}

// checkWatch compares the watch's reading of data with net/http's.
func checkWatch(t *testing.T, data []byte) {
	reqs, stop, readErr := readAsNetHTTP(data)
	heads, faultyAt := watchStream(data)
	// The same heads, in order, as long as the watch watches.
	for i, r := range reqs {
		if faultyAt >= 0 && faultyAt < r.end {
			break
		}
		if i >= len(heads) || heads[i] != [2]int64{r.start, r.end} {
			t.Fatalf("net/http read head %d at [%d, %d); the watch judged %v\n(net/http: %v)", i, r.start, r.end, heads, readErr)
		}
	}
	// Faulty at or before the first head it must refuse, and not before.
	for i, r := range reqs {
		if r.refuse {
			if faultyAt < 0 || faultyAt > r.end {
				t.Fatalf("head %d at [%d, %d) has faulty framing; the watch marked the stream at %d", i, r.start, r.end, faultyAt)
			}
			break
		}
		if faultyAt >= 0 && (faultyAt <= r.end || faultyAt <= r.bodyEnd && !r.bodyErr) {
			t.Fatalf("the watch marked the stream at %d, in request %d at [%d, %d) (body to %d), which net/http reads cleanly (net/http: %v)",
				faultyAt, i, r.start, r.end, r.bodyEnd, readErr)
		}
	}
	if readErr == nil && faultyAt >= 0 && faultyAt <= stop && !anyRefused(reqs) {
		t.Fatalf("the watch marked at %d a stream net/http reads cleanly", faultyAt)
	}
	checkBodyFailure(t, data)
	// Split anywhere, the watch reads the same.
	for _, split := range []int{len(data) / 3, len(data) / 2, len(data) - 1} {
		if split <= 0 {
			continue
		}
		w := &framingWatch{}
		var got [][2]int64
		w.trace = func(start, end int64) { got = append(got, [2]int64{start, end}) }
		w.feed(data[:split])
		faulty := w.feed(data[split:])
		if faulty != (faultyAt >= 0) || fmt.Sprint(got) != fmt.Sprint(heads) {
			t.Fatalf("split at %d: heads %v faulty %v; byte by byte: heads %v faulty at %d", split, got, faulty, heads, faultyAt)
		}
	}
}

// checkBodyFailure: a chunked body net/http fails to read, other than by
// the stream ending, marks the stream. net/http may go on reading requests
// where its reader stopped: a handler with full duplex on (the proxy's)
// leaves the rest of the body to the server, which drains it when the
// handler returns and ignores a failure. data is followed by bytes that
// end no line, so that a body cut short by data's end fails for what comes
// after it, not for the end.
func checkBodyFailure(t *testing.T, data []byte) {
	padded := append(data[:len(data):len(data)], bytes.Repeat([]byte{'x'}, 2*trailerWindow)...)
	reqs, _, err := readAsNetHTTP(padded)
	if err == nil || len(reqs) == 0 || !reqs[len(reqs)-1].bodyErr || strings.Contains(err.Error(), "EOF") {
		return
	}
	if _, faultyAt := watchStream(padded); faultyAt < 0 {
		t.Fatalf("net/http fails to read a body (%v); the watch never marks the stream", err)
	}
}

func anyRefused(reqs []netHTTPRequest) bool {
	for _, r := range reqs {
		if r.refuse {
			return true
		}
	}
	return false
}

// watchSeeds are streams for FuzzFramingWatch and TestFramingWatchFollows.
var watchSeeds = []string{
	"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nHost: x\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 67\r\n\r\nPOST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;ext=\"a\"\r\nabc\r\n0\r\nX-T: 1\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n38\r\nPOST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nHost: x\r\n\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n \r\nContent-Length: 005\r\n\r\nhello",
	"POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n 5\r\n\r\nhello",
	"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n\tchunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
	"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
	"PUT / HTTP/1.1\nHost: x\nContent-Length: 3\n\nabcGET / HTTP/1.1\nHost: x\n\n",
	"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: b\nc: d\n\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
	// Chunk data longer than its size: what net/http reads next is no request.
	"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxGET / HTTP/1.1\r\nHost: x\r\n\r\n\r\n0\r\n\r\n",
}

// FuzzFramingWatch feeds arbitrary streams to net/http's reader and to the
// watch: the watch must judge the heads net/http reads, mark the stream
// at or before a head with faulty framing, and never mark a stream in a
// request net/http reads cleanly.
func FuzzFramingWatch(f *testing.F) {
	for _, s := range watchSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 16<<10 {
			return
		}
		checkWatch(t, data)
	})
}

// TestFramingWatchSeeds checks the watch against net/http on the seeds,
// and that the seeds read as meant: net/http reads each cleanly or fails,
// and the watch marks it faulty or not.
func TestFramingWatchSeeds(t *testing.T) {
	for i, s := range watchSeeds {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			checkWatch(t, []byte(s))
			reqs, _, err := readAsNetHTTP([]byte(s))
			_, faultyAt := watchStream([]byte(s))
			t.Logf("%q: net/http read %d requests (%v); faulty at %d", s, len(reqs), err, faultyAt)
		})
	}
}

// choices hands out the bytes of a fuzz input as choices, zero when spent.
type choices []byte

func (c *choices) pick(n int) int {
	if len(*c) == 0 {
		return 0
	}
	b := (*c)[0]
	*c = (*c)[1:]
	return int(b) % n
}

func (c *choices) of(s ...string) string { return s[c.pick(len(s))] }

// lookalikes are bytes a body may hold that look like HTTP/1 framing.
var lookalikes = []string{
	"", "x", "\r\n", "\r\n\r\n", "0\r\n\r\n", "5\r\nhello\r\n",
	"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
	"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
	"GET / HTTP/1.1\nHost: x\n\n", "PRI * HTTP/2.0\r\n\r\n",
}

// buildStream builds requests, mostly well formed, from choices.
func buildStream(c *choices) []byte {
	var b bytes.Buffer
	for n := 1 + c.pick(4); n > 0; n-- {
		eol := c.of("\r\n", "\n")
		method := c.of("POST", "GET", "PUT", "POST")
		b.WriteString(method + " /v2/x " + c.of("HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/1.2") + eol)
		b.WriteString("Host: x" + eol)
		var body string
		for k := c.pick(4); k > 0; k-- {
			body += c.of(lookalikes...)
		}
		framing := c.pick(8)
		te := c.of("Transfer-Encoding: chunked", "transfer-encoding:chunked ", "Transfer-Encoding:"+eol+" chunked", "Transfer-Encoding: Chunked")
		switch framing {
		case 0, 1:
			// No body.
			body = ""
		case 2, 3:
			cl := fmt.Sprint(len(body))
			b.WriteString(c.of("Content-Length: ", "content-length:", "Content-Length: 00", "Content-Length:"+eol+"\t") + cl + eol)
			if c.pick(4) == 0 {
				b.WriteString("Content-Length: " + cl + eol)
			}
		case 4, 5, 6:
			b.WriteString(te + eol)
			if c.pick(8) == 0 {
				b.WriteString("Content-Length: 3" + eol)
			}
		case 7:
			b.WriteString(c.of("Content-Length: "+fmt.Sprint(len(body)+1), "Content-Length: x", te+eol+te) + eol)
		}
		if c.pick(3) == 0 {
			b.WriteString("X-A: " + c.of("HTTP/1.0", "a", "") + eol + c.of("", " folded"+eol))
		}
		b.WriteString(eol)
		if framing >= 4 && framing <= 6 {
			for rest := body; ; {
				k := min(len(rest), c.pick(40))
				if k == 0 && len(rest) > 0 {
					k = len(rest)
				}
				b.WriteString(fmt.Sprintf(c.of("%x", "%X", "%03x")+c.of("", ";a=b", " ", ";\"q\"")+"\r\n", k))
				if k == 0 {
					break
				}
				b.WriteString(rest[:k] + "\r\n")
				rest = rest[k:]
			}
			b.WriteString(c.of("\r\n", "\r\n", "X-T: 1\r\n\r\n", "X-T: 1\n\n", "\n", "X-T: 1\r\n x\r\n\r\n", " X: y\r\n\r\n"))
		} else {
			b.WriteString(body)
		}
		if method == "POST" {
			b.WriteString(c.of("", "\r\n", "\n", "\r\n\r\n", "\r\n\r\n\r\n"))
		}
	}
	out := b.Bytes()
	if len(out) > 0 && c.pick(3) == 0 {
		// One byte changed.
		out[c.pick(256)*len(out)/256] = byte(c.pick(256))
	}
	return out
}

// FuzzFramingWatchStreams is FuzzFramingWatch on streams of mostly well
// formed requests built from the input, with bodies that look like
// framing.
func FuzzFramingWatchStreams(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{3, 0, 0, 0, 2, 1, 6, 2, 0, 0, 1})
	f.Add([]byte{2, 1, 0, 0, 3, 5, 7, 4, 0, 0, 0, 20, 0, 0, 5, 0, 2, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		c := choices(data)
		checkWatch(t, buildStream(&c))
	})
}

// TestFramingWatchLimits: at the limits of net/http's chunked and trailer
// readers, the watch marks the stream faulty exactly where net/http fails
// to read it.
func TestFramingWatchLimits(t *testing.T) {
	const head = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	const next = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
	chunks := func(n, ext int) string {
		return strings.Repeat("1;"+strings.Repeat("e", ext)+"\r\nx\r\n", n)
	}
	for _, tc := range []struct {
		name   string
		in     string
		faulty bool
	}{
		{"chunk line of 4094 bytes", head + "1;" + strings.Repeat("e", 4092) + "\r\nx\r\n0\r\n\r\n" + next, false},
		{"chunk line of 4095 bytes", head + "1;" + strings.Repeat("e", 4093) + "\r\nx\r\n0\r\n\r\n" + next, true},
		{"16 hex digits", head + "0000000000000001\r\nx\r\n0\r\n\r\n" + next, false},
		{"17 hex digits", head + "00000000000000001\r\nx\r\n0\r\n\r\n" + next, true},
		{"chunk overhead within limits", head + chunks(150, 100) + "0\r\n\r\n" + next, false},
		{"chunk overhead too high", head + chunks(200, 100) + "0\r\n\r\n" + next, true},
		{"white space after the size", head + "1 \t\r\nx\r\n0\r\n\r\n" + next, false},
		{"white space before an extension", head + "1 ;a\r\nx\r\n0\r\n\r\n" + next, true},
		{"trailer ending at 4096 bytes", head + "0\r\nX: " + strings.Repeat("a", 4089) + "\r\n\r\n" + next, false},
		{"trailer ending at 4097 bytes", head + "0\r\nX: " + strings.Repeat("a", 4090) + "\r\n\r\n" + next, true},
		{"trailer ending in LF, CRLFCRLF further on", head + "0\r\nX: 1\n\n" + next, false},
		{"trailer ending in LF, no CRLFCRLF near", head + "0\r\nX: 1\n\nGET / HTTP/1.1\nHost: x\nX: " + strings.Repeat("a", 4096) + "\n\n", true},
		{"trailer with a folded line", head + "0\r\nX: 1\r\n 2\r\n\r\n" + next, false},
		{"trailer opening with white space", head + "0\r\n X: 1\r\n\r\n" + next, true},
		{"trailer line without colon", head + "0\r\nX\r\n\r\n" + next, true},
		{"trailer name with a space", head + "0\r\nX Y: 1\r\n\r\n" + next, false},
		{"trailer value with a control byte", head + "0\r\nX: \x01\r\n\r\n" + next, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(tc.in)
			checkWatch(t, data)
			reqs, _, err := readAsNetHTTP(data)
			_, faultyAt := watchStream(data)
			if (faultyAt >= 0) != tc.faulty {
				t.Errorf("faulty at %d, want faulty %v", faultyAt, tc.faulty)
			}
			if tc.faulty && len(reqs) > 0 && !reqs[len(reqs)-1].bodyErr {
				t.Errorf("net/http read it cleanly (%d requests, %v)", len(reqs), err)
			}
			if !tc.faulty && (err != nil || len(reqs) != 2) {
				t.Errorf("net/http read %d requests, %v; want 2", len(reqs), err)
			}
		})
	}
}
