package auth

import (
	"context"
	"testing"
	"time"
)

// TestCheckQueryOverride: CheckQueryProject refuses a query key naming a
// method override (invalid_query), unless a key names another project,
// and still in one reading of the query.
func TestCheckQueryOverride(t *testing.T) {
	for q, want := range map[string]bool{
		"":                                false,
		"_method=DELETE":                  true,
		"Tag=a&_METHOD=GET":               true,
		"-method=GET":                     true,
		"%5Fmethod=GET":                   true,
		"_m%65thod=GET":                   true,
		"+_method+=GET":                   true,
		"%20_method%09=GET":               true,
		"_method":                         true,
		"X-HTTP-Method-Override=DELETE":   true,
		"x_http_method_override=DELETE":   true,
		"X-Http-Method=PUT":               true,
		"x-method-override=PATCH":         true,
		"Tag=_method":                     false, // a value, not a key
		"method=GET":                      false,
		"_methods=GET":                    false,
		"_meth+od=GET":                    false,
		"x-http-method-overrides=DELETE":  false,
		"filter._method=GET":              false,
		"ProjectId=42&Tag=a;_method=POST": false, // ";" is data: one key, "Tag"
		"_method=GET&ProjectId=42":        true,
	} {
		code := OK
		if want {
			code = CodeInvalidQuery
		}
		if got := CheckQueryProject(q, 42); got != code {
			t.Errorf("CheckQueryProject(%q) = %v, want %v", q, got, code)
		}
	}
	for q, want := range map[string]Code{
		"_method=GET&ProjectId=43": CodeProjectMismatch, // as before: a mismatch decides
		"ProjectId=43&_method=GET": CodeProjectMismatch,
		"_method=GET&%zz":          CodeInvalidQuery,
	} {
		if got := CheckQueryProject(q, 42); got != want {
			t.Errorf("CheckQueryProject(%q) = %v, want %v", q, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { CheckQueryProject("Tag=a&%5Fmethod=GET&ProjectId=42", 42) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

// TestGateRefusesMethodOverrideQuery: a method override in the query could
// have the API serve another method than the one checked — a POST by a
// token scoped to compute.write served as the GET that needs
// compute.read — so it is refused invalid_query, on every route.
func TestGateRefusesMethodOverrideQuery(t *testing.T) {
	f := newGateFixture(t, nil)
	writeOnly := f.token(t, RoleOwner, func(t *Token) { t.Scopes = PermSet(0).With(PermComputeWrite) })
	acct := f.token(t, RoleAccounting, nil)
	for _, c := range []struct {
		method, path, query, cred string
		want                      Code
	}{
		{"POST", "/v2/Instance", "_method=GET", writeOnly, CodeInvalidQuery},
		{"POST", "/v2/Instance", "ProjectId=42&X-HTTP-Method-Override=GET", writeOnly, CodeInvalidQuery},
		{"GET", "/v2/Invoice", "_method=DELETE", acct, CodeInvalidQuery},
		{"POST", "/v2/Instance", "ProjectId=42", writeOnly, OK},
		{"GET", "/v2/Invoice", "Tag=_method", acct, OK},
	} {
		req := Request{Method: c.method, Path: c.path, RawQuery: c.query, Authorization: "Bearer " + c.cred}
		if v := f.gate.Decide(context.Background(), &req, time.Now()); v.Code != c.want {
			t.Errorf("%s %s?%s: %s, want %s", c.method, c.path, c.query, v.Code, c.want)
		}
	}
}

// TestCheckBodyMethodOverride: Laravel takes "_method" from a JSON body's
// top-level keys too. A body whose top-level object names a method
// override, spelt as a query key would be, is refused with the query
// form's code; the name deeper in the body, or as a value, is data.
func TestCheckBodyMethodOverride(t *testing.T) {
	for body, want := range map[string]Code{
		`{"_method":"DELETE"}`:                                 CodeInvalidQuery,
		`{"name":"k","_METHOD":"GET"}`:                         CodeInvalidQuery,
		`{"-method":"GET"}`:                                    CodeInvalidQuery,
		`{"\u005fmethod":"GET"}`:                               CodeInvalidQuery,
		`{" _method\t":"GET"}`:                                 CodeInvalidQuery,
		`{"X-HTTP-Method-Override":"DELETE"}`:                  CodeInvalidQuery,
		`{"x_http_method_override":"DELETE"}`:                  CodeInvalidQuery,
		`{"X-Http-Method":"PUT"}`:                              CodeInvalidQuery,
		`{"x-method-override":"PATCH"}`:                        CodeInvalidQuery,
		`{"projectId":42,"_method":null}`:                      CodeInvalidQuery,
		`{"                         _method":1}`:               CodeInvalidQuery, // longer than the key buffer
		`{"_method":1,"projectId":43}`:                         CodeInvalidQuery, // the first problem decides
		`{"projectId":43,"_method":1}`:                         CodeProjectMismatch,
		`{"name":"_method"}`:                                   OK,
		`{"a":{"_method":"GET"}}`:                              OK,
		`[{"_method":"GET"}]`:                                  OK,
		`{"_methods":"GET"}`:                                   OK,
		`{"_meth od":"GET"}`:                                   OK,
		`{"method":"GET"}`:                                     OK,
		`{"x-http-method-overrides":"GET"}`:                    OK,
		`{"name":"k","key":"ssh-ed25519 AAAA","projectId":42}`: OK,
	} {
		if got := CheckBody(true, "application/json", "", []byte(body), true, 42); got != want {
			t.Errorf("CheckBody(%s) = %v, want %v", body, got, want)
		}
	}
	if got := CheckBody(true, "application/json", "", []byte(`{"_method":"DELETE","name":"`), false, 42); got != CodeInvalidQuery {
		t.Errorf("a cut body naming an override: %v, want %v", got, CodeInvalidQuery)
	}
	body := []byte(`{"name":"k","x_http_method":"GET","projectId":42}`)
	if n := testing.AllocsPerRun(100, func() { CheckBody(true, "application/json", "", body, true, 42) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}
