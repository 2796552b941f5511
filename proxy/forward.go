package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Forwarding: the request the decision read, and nothing else, goes
// upstream; the answer comes back as the upstream gave it, less the fields
// of one connection.

// errAbort is an upstream answer that broke off after its head was sent
// to the client: the client's response must break off too.
var errAbort = errors.New("the upstream answer broke off")

// forward sends the checked request r upstream and relays the answer to
// w. It returns errAbort when the answer broke off mid-body.
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, st *reqState) error {
	out := h.outbound(r, st)
	start := h.now()
	resp, err := h.transport.RoundTrip(out)
	st.sample.upstream, st.sample.called = h.now().Sub(start), true
	if err != nil {
		h.upstreamError(w, r, st, err)
		return nil
	}
	defer resp.Body.Close()
	copyHead(w.Header(), resp)
	w.Header()[HeaderRequestID] = []string{st.reqID} // ours, whatever the upstream echoes
	w.WriteHeader(resp.StatusCode)
	if err := relayBody(w, resp); err != nil {
		if errors.Is(err, errClientWrite) || r.Context().Err() != nil {
			// The client is gone (its leaving also ends the upstream
			// read): nobody to tell, and no fault of the upstream's.
			st.rec.status = StatusClientClosed
			return nil
		}
		h.log.Warn("upstream answer broke off", "request_id", st.reqID, "err", err)
		return errAbort
	}
	copyTrailers(w.Header(), resp)
	return nil
}

// outbound builds the upstream request from r, in st: the method, path
// and query exactly as the decision read them, the client's end-to-end
// fields less those the gateway drops, and the gateway's own.
func (h *Handler) outbound(r *http.Request, st *reqState) *http.Request {
	u := &st.outURL
	*u = url.URL{Scheme: h.upstream.Scheme, Host: h.upstream.Host}
	u.Path, u.RawPath = joinPath(h.upstream, r.URL)
	u.RawQuery, u.ForceQuery = joinQuery(h.upstream.RawQuery, r.URL.RawQuery), r.URL.ForceQuery
	// A copy of r, for its context (WithContext would allocate), with
	// every exported field set anew.
	out := &st.out
	*out = *r
	out.Method, out.URL, out.Proto, out.ProtoMajor, out.ProtoMinor = r.Method, u, "HTTP/1.1", 1, 1
	out.Header, out.Body, out.GetBody, out.ContentLength = h.outHeader(r, st), nil, nil, 0
	out.TransferEncoding, out.Close, out.Host = nil, false, h.upstream.Host
	out.Form, out.PostForm, out.MultipartForm, out.Trailer = nil, nil, nil, nil
	out.RemoteAddr, out.RequestURI, out.TLS, out.Cancel, out.Response, out.Pattern = "", "", nil, nil, nil, ""
	setBody(out, r, st)
	return out
}

// outHeader returns the header fields sent upstream.
func (h *Handler) outHeader(r *http.Request, st *reqState) http.Header {
	if st.outHeader == nil {
		st.outHeader = make(http.Header, len(r.Header)+8)
	}
	out := st.outHeader
	for k, vs := range r.Header {
		if !notForwarded(k) && !droppedHeader(k) {
			out[k] = vs
		}
	}
	if h.passAuth {
		if vs, ok := r.Header["Authorization"]; ok {
			out["Authorization"] = vs
		}
	}
	if ip := h.forwardedFor(r, st); ip != "" {
		st.outVals[6] = ip
		out["X-Forwarded-For"] = st.outVals[6:7:7]
	}
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	t := st.token
	vals := st.outVals[:]
	vals[0], vals[1], vals[2], vals[3] = strconv.FormatInt(t.ProjectID, 10), t.ID, t.Role.String(), st.reqID
	vals[4], vals[5] = r.Host, proto
	out[HeaderProjectID] = vals[0:1:1]
	out[HeaderTokenID] = vals[1:2:2]
	out[HeaderTokenRole] = vals[2:3:3]
	out[HeaderRequestID] = vals[3:4:4]
	if r.Host != "" { // HTTP/1.0 may name none: no empty field
		out["X-Forwarded-Host"] = vals[4:5:5]
	}
	out["X-Forwarded-Proto"] = vals[5:6:6]
	if h.asserter != nil {
		h.assert(out, t, st)
	}
	return out
}

// forwardedFor is the client address the upstream is told: the one the
// decision checked (through a trusted proxy, the address it forwarded),
// else the connection's peer.
func (h *Handler) forwardedFor(r *http.Request, st *reqState) string {
	if len(h.trusted) > 0 && st.client.IsValid() {
		return st.client.String()
	}
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return ""
	}
	return ip
}

// notForwarded reports the client's fields that never go upstream: those
// of one connection (RFC 9110 §7.6.1; a Connection field naming anything
// else was refused), the framing the gateway sets itself, Expect (the
// gateway answered it; the upstream's own 100 would reach the client as a
// second), Upgrade (the API has none, and a tunnel would carry requests
// past every check), Forwarded (the gateway's X-Forwarded-* say who the
// client is, not the client) and Authorization (unless PassAuthorization:
// the upstream learns the caller from the identity fields).
func notForwarded(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Host", "Content-Length", "Expect",
		"Authorization", "Http2-Settings", "Forwarded":
		return true
	}
	return false
}

// joinPath appends the client's path to the upstream URL's, keeping the
// client's escaping (the path the decision read).
func joinPath(base, in *url.URL) (path, rawPath string) {
	if base.Path == "" || base.Path == "/" {
		return in.Path, in.RawPath
	}
	bp, ip := base.EscapedPath(), in.EscapedPath()
	bpath, ipath := strings.TrimSuffix(base.Path, "/"), in.Path
	bp = strings.TrimSuffix(bp, "/")
	if !strings.HasPrefix(ip, "/") {
		bp, bpath = bp+"/", bpath+"/"
	}
	if base.RawPath == "" && in.RawPath == "" {
		return bpath + ipath, ""
	}
	return bpath + ipath, bp + ip
}

// setBody gives out r's body: the checked prefix when it was the whole
// body (a replayable copy), the prefix and the rest otherwise.
func setBody(out, r *http.Request, st *reqState) {
	if st.req.Body == nil {
		return // none, or an empty one
	}
	if _, _, err := st.body.BodyPrefix(); err != nil {
		// The decision read the body already; reaching here means it
		// did not: send the client's body as it comes.
		out.Body, out.ContentLength = r.Body, r.ContentLength
		return
	}
	if !st.body.complete {
		out.Body, out.ContentLength = r.Body, r.ContentLength
		return
	}
	whole := st.body.prefix
	if len(whole) == 0 {
		return // an empty (chunked) body: none, as http.Transport sent it
	}
	out.ContentLength = int64(len(whole))
	out.Body = io.NopCloser(bytes.NewReader(whole))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(whole)), nil }
}

// copyHead copies the response's end-to-end fields into dst: all but
// those of one connection, including any its Connection field names.
func copyHead(dst http.Header, resp *http.Response) {
	conn := resp.Header["Connection"]
	for k, vs := range resp.Header {
		if !hopField(k) && !namedIn(conn, k) {
			dst[k] = vs
		}
	}
	if len(resp.Trailer) > 0 {
		names := make([]string, 0, len(resp.Trailer))
		for k := range resp.Trailer {
			names = append(names, k)
		}
		dst["Trailer"] = []string{strings.Join(names, ", ")}
	}
}

// namedIn reports whether a Connection field's options name k.
func namedIn(conn []string, k string) bool {
	for _, v := range conn {
		for opt := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(opt), k) {
				return true
			}
		}
	}
	return false
}

// hopField reports the fields of one connection (RFC 9110 §7.6.1).
func hopField(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// copyTrailers sends the upstream's trailers: those copyHead announced,
// and those the upstream sent unannounced (as http.TrailerPrefix fields).
func copyTrailers(dst http.Header, resp *http.Response) {
	announced := dst["Trailer"]
	for k, vs := range resp.Trailer {
		if namedIn(announced, k) {
			dst[k] = vs
		} else {
			dst[http.TrailerPrefix+k] = vs
		}
	}
}

// errClientWrite is a failure to write to the client.
var errClientWrite = errors.New("writing to the client")

// relayBody copies the answer's body to w, flushing each piece when the
// answer is a stream (no length, or server-sent events).
func relayBody(w http.ResponseWriter, resp *http.Response) error {
	stream := resp.ContentLength < 0 || strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return errClientWrite
			}
			if f, ok := w.(http.Flusher); ok && stream {
				f.Flush()
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}
