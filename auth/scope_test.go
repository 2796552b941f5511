package auth

import (
	"strings"
	"testing"
)

type queryCase struct {
	query string
	want  Code
}

// queryCases are checked against project 42.
var queryCases = []queryCase{
	{"", OK},
	{"limit=10", OK},
	{"ProjectId=42", OK},
	{"ProjectId=42&limit=10", OK},
	{"projectid=42", OK},
	{"PROJECTID=42", OK},
	{"pRoJeCtId=42", OK},
	{"ProjectId=43", CodeProjectMismatch},
	{"limit=10&ProjectId=43", CodeProjectMismatch},
	{"projectId=7&skip=1", CodeProjectMismatch},

	// Repeats: every one must match.
	{"ProjectId=42&ProjectId=42", OK},
	{"ProjectId=42&ProjectId=43", CodeProjectMismatch},
	{"ProjectId=43&ProjectId=42", CodeProjectMismatch},
	{"ProjectId=42&projectid=43", CodeProjectMismatch},
	{"ProjectId=42;ProjectId=43", CodeProjectMismatch},
	{"a=1;ProjectId=43", CodeProjectMismatch},
	{"ProjectId=42,43", CodeProjectMismatch},

	// Percent-encoded and plus-as-space keys.
	{"Project%49d=43", CodeProjectMismatch},
	{"Project%69d=43", CodeProjectMismatch},
	{"%50%52%4F%4A%45%43%54%49%44=43", CodeProjectMismatch},
	{"Project%49d=42", OK},
	{"Project%u0049d=43", CodeProjectMismatch},
	{"Project%2549d=43", OK}, // decodes once to "Project%49d"
	{"ProjectId+=43", CodeProjectMismatch},
	{"+ProjectId=43", CodeProjectMismatch},
	{"%20ProjectId%20=43", CodeProjectMismatch},
	{"Project+Id=43", OK},
	{"Project%zzId=43", OK},
	{"%zz.ProjectId=43", CodeProjectMismatch},
	{"Project%C4%B1d=43", CodeProjectMismatch}, // dotless i
	{"Project\xc4\xb0d=43", CodeProjectMismatch},
	{"ProjectIdx=43", OK},
	{"xProjectId=43", OK},
	{"Project=43", OK},
	{"Projectid2=43", OK},

	// Dotted and bracketed keys.
	{"filter.ProjectId=43", CodeProjectMismatch},
	{"filter.ProjectId=42", OK},
	{"a.b.projectId=43", CodeProjectMismatch},
	{"filter%2EProjectId=43", CodeProjectMismatch},
	{"ProjectId[]=43", CodeProjectMismatch},
	{"ProjectId%5B%5D=43", CodeProjectMismatch},
	{"ProjectId[]=42&ProjectId[]=42", OK},
	{"ProjectId[0]=43", CodeProjectMismatch},
	{"x[ProjectId]=43", CodeProjectMismatch},
	{"x[ProjectId]=42", OK},
	{"[0].ProjectId=43", CodeProjectMismatch},
	{"ProjectId.x=43", CodeProjectMismatch},
	{"filter_ProjectId=43", OK},

	// Values: the canonical decimal only.
	{"ProjectId=042", CodeProjectMismatch},
	{"ProjectId=%2B42", CodeProjectMismatch},
	{"ProjectId=+42", CodeProjectMismatch},
	{"ProjectId=42+", CodeProjectMismatch},
	{"ProjectId=-42", CodeProjectMismatch},
	{"ProjectId=%2042", CodeProjectMismatch},
	{"ProjectId=42%20", CodeProjectMismatch},
	{"ProjectId=%34%32", OK},
	{"ProjectId=4%32", OK},
	{"ProjectId=%342", OK},
	{"ProjectId=%", CodeProjectMismatch},
	{"ProjectId=4%", CodeProjectMismatch},
	{"ProjectId=%3", CodeProjectMismatch},
	{"ProjectId=%zz", CodeProjectMismatch},
	{"ProjectId=%2534%2532", CodeProjectMismatch},
	{"ProjectId=42.0", CodeProjectMismatch},
	{"ProjectId=4.2e1", CodeProjectMismatch},
	{"ProjectId=0x2a", CodeProjectMismatch},
	{"ProjectId=42=42", CodeProjectMismatch},
	{"ProjectId=", CodeProjectMismatch},
	{"ProjectId", CodeProjectMismatch},
	{"ProjectId&limit=1", CodeProjectMismatch},
	{"=42", OK},
	{"&&&", OK},
	{"ProjectId=42&", OK},
	{"&ProjectId=42", OK},
}

func TestCheckQueryProject(t *testing.T) {
	for _, tc := range queryCases {
		if got := CheckQueryProject(tc.query, 42); got != tc.want {
			t.Errorf("CheckQueryProject(%q, 42) = %v, want %v", tc.query, got, tc.want)
		}
	}
}

func TestCheckQueryProjectOtherProjects(t *testing.T) {
	for _, tc := range []struct {
		query   string
		project int64
		want    Code
	}{
		{"ProjectId=0", 0, OK},
		{"ProjectId=00", 0, CodeProjectMismatch},
		{"ProjectId=9223372036854775807", 9223372036854775807, OK},
		{"ProjectId=9223372036854775807", 922337203685477580, CodeProjectMismatch},
		{"ProjectId=1", 12, CodeProjectMismatch},
		{"ProjectId=12", 1, CodeProjectMismatch},
	} {
		if got := CheckQueryProject(tc.query, tc.project); got != tc.want {
			t.Errorf("CheckQueryProject(%q, %d) = %v, want %v", tc.query, tc.project, got, tc.want)
		}
	}
}

func TestCheckQueryProjectAllocs(t *testing.T) {
	for _, q := range []string{
		"ProjectId=42&limit=10",
		"Status=Active&Region=PIT1&Tier=a&Tag=b&Limit=10&Skip=0&ProjectId=42",
		"filter.ProjectId=42&x[ProjectId]=42",
		"Project%49d=42&a+b=%20", // keys that need decoding, short enough for the stack
	} {
		if n := testing.AllocsPerRun(100, func() { CheckQueryProject(q, 42) }); n != 0 {
			t.Errorf("CheckQueryProject(%q) allocates %v times", q, n)
		}
	}
	long := strings.Repeat("%41", 100) + "=1&ProjectId=42"
	if got := CheckQueryProject(long, 42); got != OK {
		t.Errorf("long key: %v", got)
	}
}

type bodyCase struct {
	contentType string
	body        string
	complete    bool
	want        Code
}

const ctJSON = "application/json"

// bodyCases are checked against project 42.
var bodyCases = []bodyCase{
	// Empty and non-JSON bodies.
	{ctJSON, "", true, OK},
	{"", "", true, OK},
	{ctJSON, "  \n", true, OK},
	{ctJSON, "  ", false, CodeBodyTooLarge},
	{"text/plain", "hello", true, OK},
	{"application/octet-stream", "\x00\x01", false, OK},
	{"", "projectId=43", true, OK},

	// Which bodies are JSON.
	{ctJSON, `{"projectId":42}`, true, OK},
	{ctJSON, `{"projectId":43}`, true, CodeProjectMismatch},
	{"application/json; charset=utf-8", `{"projectId":43}`, true, CodeProjectMismatch},
	{"Application/JSON", `{"projectId":43}`, true, CodeProjectMismatch},
	{"text/json", `{"projectId":43}`, true, CodeProjectMismatch},
	{"application/json-patch+json", `{"projectId":43}`, true, CodeProjectMismatch},
	{"application/vnd.x+JSON;v=1", `{"projectId":43}`, true, CodeProjectMismatch},
	{"text/plain", `{"projectId":43}`, true, CodeProjectMismatch},
	{"", "\t\r\n {\"projectId\":43}", true, CodeProjectMismatch},
	{"", "\xef\xbb\xbf{\"projectId\":43}", true, CodeProjectMismatch},
	{ctJSON, "\xef\xbb\xbf{\"projectId\":42}", true, OK},
	{"text/plain", `{not json`, true, CodeInvalidBody},
	{ctJSON, `hello`, true, CodeInvalidBody},
	{ctJSON, `projectId=43`, true, CodeInvalidBody},
	{"application/xml", `<projectId>43</projectId>`, true, OK},

	// Keys: case, escapes, duplicates, nesting.
	{ctJSON, `{"ProjectId":43}`, true, CodeProjectMismatch},
	{ctJSON, `{"PROJECTID":43}`, true, CodeProjectMismatch},
	{ctJSON, `{"project\u0049d":43}`, true, CodeProjectMismatch},
	{ctJSON, `{"\u0070\u0072\u006f\u006a\u0065\u0063\u0074\u0069\u0064":43}`, true, CodeProjectMismatch},
	{ctJSON, `{"project\u0131d":43}`, true, CodeProjectMismatch},
	{ctJSON, "{\"project\xc4\xb1d\":43}", true, CodeProjectMismatch},
	{ctJSON, `{"project\u0049d":42}`, true, OK},
	{ctJSON, `{"projectId ":43}`, true, OK},
	{ctJSON, `{"project_id":43}`, true, OK},
	{ctJSON, `{"filter.projectId":43}`, true, OK},
	{ctJSON, `{"projectIdx":43, "xprojectId":43}`, true, OK},
	{ctJSON, `{"projectId":42,"projectId":43}`, true, CodeProjectMismatch},
	{ctJSON, `{"projectId":43,"projectId":42}`, true, CodeProjectMismatch},
	{ctJSON, `{"projectId":42,"ProjectID":42,"projectid":"42"}`, true, OK},
	{ctJSON, `{"a":{"projectId":43}}`, true, OK},
	{ctJSON, `{"a":[{"projectId":43}]}`, true, OK},
	{ctJSON, `{"a":"{\"projectId\":43}"}`, true, OK},
	{ctJSON, `{"a":1,"b":[1,2,{"c":null}],"projectId":42,"d":true}`, true, OK},
	{ctJSON, `{"a":1,"b":[1,2,{"c":null}],"projectId":43,"d":true}`, true, CodeProjectMismatch},

	// Values.
	{ctJSON, `{"projectId":"42"}`, true, OK},
	{ctJSON, `{"projectId":"\u0034\u0032"}`, true, OK},
	{ctJSON, `{"projectId":"43"}`, true, CodeProjectMismatch},
	{ctJSON, `{"projectId":"042"}`, true, CodeProjectMismatch},
	{ctJSON, `{"projectId":" 42"}`, true, CodeProjectMismatch},
	{ctJSON, `{"projectId":"+42"}`, true, CodeProjectMismatch},
	{ctJSON, `{"projectId":""}`, true, CodeProjectMismatch},
	{ctJSON, `{"projectId":"424242424242424242424242424242"}`, true, CodeProjectMismatch},
	{ctJSON, `{"projectId":42.0}`, true, CodeProjectMismatch},
	{ctJSON, `{"projectId":4.2e1}`, true, CodeProjectMismatch},
	{ctJSON, `{"projectId":42e0}`, true, CodeProjectMismatch},
	{ctJSON, `{"projectId":-42}`, true, CodeProjectMismatch},
	{ctJSON, `{"projectId":null}`, true, CodeProjectMismatch},
	{ctJSON, `{"projectId":true}`, true, CodeProjectMismatch},
	{ctJSON, `{"projectId":[42]}`, true, CodeProjectMismatch},
	{ctJSON, `{"projectId":{"id":42}}`, true, CodeProjectMismatch},
	{ctJSON, ` { "projectId" : 42 } `, true, OK},
	{ctJSON, "{\n\t\"projectId\":\r\n42\n}\n", true, OK},

	// Not objects: no top-level fields.
	{ctJSON, `[{"projectId":43}]`, true, OK},
	{ctJSON, `"projectId"`, true, OK},
	{ctJSON, `43`, true, OK},
	{ctJSON, `null`, true, OK},
	{ctJSON, `[1,2`, true, CodeInvalidBody},

	// Malformed JSON.
	{ctJSON, `{`, true, CodeInvalidBody},
	{ctJSON, `{"projectId":42`, true, CodeInvalidBody},
	{ctJSON, `{"projectId":42,}`, true, CodeInvalidBody},
	{ctJSON, `{"projectId":042}`, true, CodeProjectMismatch}, // the number is 0, then junk
	{ctJSON, `{"a":01}`, true, CodeInvalidBody},
	{ctJSON, `{projectId:43}`, true, CodeInvalidBody},
	{ctJSON, `{'projectId':43}`, true, CodeInvalidBody},
	{ctJSON, `{"a":1 /* x */}`, true, CodeInvalidBody},
	{ctJSON, `{"a":"\x"}`, true, CodeInvalidBody},
	{ctJSON, "{\"a\":\"\x01\"}", true, CodeInvalidBody},
	{ctJSON, `{"a":"\u12"}`, true, CodeInvalidBody},
	{ctJSON, `{"a":tru}`, true, CodeInvalidBody},
	{ctJSON, `{"a":1}{"projectId":43}`, true, CodeInvalidBody},
	{ctJSON, `{"a":1} x`, true, CodeInvalidBody},
	{ctJSON, `{"a":1}}`, true, CodeInvalidBody},
	{ctJSON, `{"a" 1}`, true, CodeInvalidBody},
	{ctJSON, `{"a":[1,]}`, true, CodeInvalidBody},
	{ctJSON, `{"a":-}`, true, CodeInvalidBody},
	{ctJSON, `{"a":1.}`, true, CodeInvalidBody},
	{ctJSON, `{"a":1e}`, true, CodeInvalidBody},
	{ctJSON, `{"a":NaN}`, true, CodeInvalidBody},
	{ctJSON, strings.Repeat("[", maxJSONDepth+1) + strings.Repeat("]", maxJSONDepth+1), true, CodeInvalidBody},
	{ctJSON, strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth), true, OK},
	{ctJSON, strings.Repeat(`{"a":`, maxJSONDepth+1) + "1" + strings.Repeat("}", maxJSONDepth+1), true, CodeInvalidBody},
	{ctJSON, strings.Repeat(`{"a":`, maxJSONDepth) + "1" + strings.Repeat("}", maxJSONDepth), true, OK},

	// Lone and paired surrogates in keys and values.
	{ctJSON, `{"\ud800projectId":43}`, true, OK},
	{ctJSON, `{"\ud83d\ude00":1,"projectId":42}`, true, OK},
	{ctJSON, `{"a":"\udc00\u0041"}`, true, OK},

	// Cut prefixes.
	{ctJSON, `{"projectId":42,"name":"x`, false, CodeBodyTooLarge},
	{ctJSON, `{"name":"x","proj`, false, CodeBodyTooLarge},
	{ctJSON, `{"projectId":4`, false, CodeBodyTooLarge},
	{ctJSON, `{"projectId":42`, false, CodeBodyTooLarge},
	{ctJSON, `{"projectId":"4`, false, CodeBodyTooLarge},
	{ctJSON, `{"a":"\u00`, false, CodeBodyTooLarge},
	{ctJSON, `{"a":"\`, false, CodeBodyTooLarge},
	{ctJSON, `{"a":tr`, false, CodeBodyTooLarge},
	{ctJSON, `{"a":-`, false, CodeBodyTooLarge},
	{ctJSON, `{"a":1.5e`, false, CodeBodyTooLarge},
	{ctJSON, `{"a":[{"b":{`, false, CodeBodyTooLarge},
	{ctJSON, `{"projectId":43,"name":"x`, false, CodeProjectMismatch},
	{ctJSON, `{"a":tx`, false, CodeInvalidBody},
	{ctJSON, `{"a":"\q`, false, CodeInvalidBody},
	{ctJSON, `{"a":"\u00zz`, false, CodeInvalidBody},
	{ctJSON, `{"projectId":42}`, false, CodeInvalidBody},
	{ctJSON, `{"projectId":42}  `, false, CodeInvalidBody},
	{ctJSON, `[1,2`, false, CodeBodyTooLarge},
	{ctJSON, `42`, false, CodeBodyTooLarge},
	{"text/plain", `{"a"`, false, CodeBodyTooLarge},
	{"text/plain", `hello`, false, OK},

	// Form bodies.
	{"application/x-www-form-urlencoded", "ProjectId=42&name=x", true, OK},
	{"application/x-www-form-urlencoded", "ProjectId=43&name=x", true, CodeProjectMismatch},
	{"application/x-www-form-urlencoded; charset=utf-8", "name=x&filter.projectId=43", true, CodeProjectMismatch},
	{"Application/X-WWW-Form-Urlencoded", "Project%49d=43", true, CodeProjectMismatch},
	{"application/x-www-form-urlencoded", "name=x;ProjectId=43", true, CodeProjectMismatch},
	{"application/x-www-form-urlencoded", "", true, OK},
	{"application/x-www-form-urlencoded", "ProjectId=42&name=x", false, CodeBodyTooLarge},
	{"application/x-www-form-urlencoded", "ProjectId=43&name=x", false, CodeProjectMismatch},
	{"application/x-www-form-urlencoded", "name=x&ProjectId=4", false, CodeBodyTooLarge},
	{"application/x-www-form-urlencoded", `{"projectId":43}`, true, CodeProjectMismatch},

	// Multipart is refused.
	{"multipart/form-data; boundary=x", "--x\r\n", true, CodeInvalidBody},
	{"Multipart/Mixed", "", true, CodeInvalidBody},
}

func TestCheckBodyProject(t *testing.T) {
	for _, tc := range bodyCases {
		if got := CheckBodyProject(tc.contentType, []byte(tc.body), tc.complete, 42); got != tc.want {
			t.Errorf("CheckBodyProject(%q, %.80q, %v, 42) = %v, want %v", tc.contentType, tc.body, tc.complete, got, tc.want)
		}
	}
}

// TestCheckBodyProjectPrefixes cuts valid bodies at every length: a cut
// body must never pass, and must be refused as too large unless the cut
// leaves it naming the wrong project or malformed.
func TestCheckBodyProjectPrefixes(t *testing.T) {
	for _, body := range []string{
		`{"projectId":42,"name":"a\"b\u0041","tags":["x",{"y":[1,2.5e-3,true,false,null]}],"n":-0.5E+2}`,
		` {"a":{"projectId":7}, "PROJECTID" : "42"} `,
	} {
		if got := CheckBodyProject(ctJSON, []byte(body), true, 42); got != OK {
			t.Fatalf("whole body %q: %v", body, got)
		}
		for n := 0; n < len(body); n++ {
			got := CheckBodyProject(ctJSON, []byte(body[:n]), false, 42)
			if got != CodeBodyTooLarge && got != CodeInvalidBody {
				t.Errorf("prefix %q: %v, want body_too_large or invalid_body", body[:n], got)
			}
			if got == CodeInvalidBody && strings.TrimSpace(body[:n]) != strings.TrimSpace(body) {
				t.Errorf("prefix %q of a valid body: invalid_body", body[:n])
			}
		}
	}
}

func TestCheckBodyProjectAllocs(t *testing.T) {
	body := []byte(`{"name":"web-1","projectId":42,"regionId":"PIT1","tags":["a","b"],"sshKeyIds":[1,2],"project\u0049d":"42"}`)
	if n := testing.AllocsPerRun(100, func() { CheckBodyProject("application/json; charset=utf-8", body, true, 42) }); n != 0 {
		t.Errorf("CheckBodyProject allocates %v times", n)
	}
}

func BenchmarkCheckQueryProject(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		CheckQueryProject("Status=Active&Region=PIT1&Limit=10&Skip=0&ProjectId=42", 42)
	}
}

func BenchmarkCheckBodyProject(b *testing.B) {
	body := []byte(`{"displayName":"web-1","projectId":42,"regionId":"PIT1","tierId":"c1.small","imageId":"ubuntu-24.04","sshKeyIds":[1,2],"tags":["prod","web"],"userData":"#cloud-config\npackages: [nginx]\n"}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		CheckBodyProject("application/json", body, true, 42)
	}
}
