package tokenapi

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"
)

// A body the strict reader accepts is read one way only: UTF-8 JSON, one
// object, each key exactly a field's name, given once, never null, and no
// string holding a control character; and it decodes as it was checked.
func FuzzStrictBody(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"status":"inactive"}`, `{"status":"inactive","status":"active"}`, `{"Status":"inactive"}`,
		`{"scopes":null}`, `{"scopes":["compute.read"]}`, `{"expires_in":""}`, `{"rate_limit":"5"}`,
		`{"status":"a\u001bb"}`, "{\"status\":\"\xff\"}", `{"status":"inactive"} {}`, `[]`, `{"ſtatus":"x"}`,
		`{"allowed_ips":["10.0.0.0/8"],"burst":3}`, `{"expires_at":"2030-01-02T15:04:05Z"}`,
		`{"status":"\ud800"}`, `{"status":"\ud83d\ude00"}`, `{"status":"\\ud800"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req UpdateRequest
		r := httptest.NewRequest("PATCH", "/v1/tokens/x", bytes.NewReader(body))
		if problems := readBody(httptest.NewRecorder(), r, &req, true); len(problems) > 0 {
			for _, p := range problems {
				if !strings.Contains(p, ": ") {
					t.Fatalf("problem %q does not name its field", p)
				}
			}
			return
		}
		if len(bytes.TrimSpace(body)) == 0 {
			return
		}
		if !utf8.Valid(body) {
			t.Fatalf("accepted a body that is not UTF-8: %q", body)
		}
		var members map[string]json.RawMessage
		if err := json.Unmarshal(body, &members); err != nil {
			t.Fatalf("accepted %q, which is not one object: %v", body, err)
		}
		fields := requestFields(&req)
		seen := map[string]bool{}
		for _, m := range mustMembers(t, body) {
			if _, ok := fields[m.key]; !ok {
				t.Fatalf("accepted key %q of %q, not a field", m.key, body)
			}
			if seen[strings.ToLower(m.key)] {
				t.Fatalf("accepted key %q twice in %q", m.key, body)
			}
			seen[strings.ToLower(m.key)] = true
			if string(m.value) == "null" {
				t.Fatalf("accepted null in %q", body)
			}
		}
		var again UpdateRequest
		if err := json.Unmarshal(body, &again); err != nil {
			t.Fatalf("accepted %q, which does not decode: %v", body, err)
		}
		for _, s := range updateStrings(&again) {
			if c, bad := controlChar(s); bad {
				t.Fatalf("accepted %q with control character %U", body, c)
			}
			if strings.ContainsRune(s, utf8.RuneError) && !bytes.Contains(body, []byte("\uFFFD")) &&
				!bytes.Contains(bytes.ToLower(body), []byte(`\ufffd`)) {
				t.Fatalf("accepted %q, which decodes with a replacement character", body)
			}
		}
	})
}

// mustMembers returns the members of body, a JSON object.
func mustMembers(t *testing.T, body []byte) []member {
	t.Helper()
	var whole json.RawMessage
	if err := json.Unmarshal(body, &whole); err != nil {
		t.Fatal(err)
	}
	ms, err := objectMembers(bytes.TrimSpace(whole))
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// updateStrings returns every string an update request holds.
func updateStrings(req *UpdateRequest) []string {
	var out []string
	for _, p := range []*string{req.Status, req.ExpiresIn} {
		if p != nil {
			out = append(out, *p)
		}
	}
	for _, l := range []*[]string{req.Scopes, req.AllowedIPs} {
		if l != nil {
			out = append(out, *l...)
		}
	}
	return out
}
