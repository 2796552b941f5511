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
	{"ProjectId=42,43", CodeProjectMismatch},

	// "&" is the only separator; ";" is data (seen on main: the check
	// split at ";" where the API does not).
	{"Tag=a;b&ProjectId=42", OK},
	{"Tag=a;ProjectId=43&ProjectId=42", OK}, // one pair: Tag = "a;ProjectId=43"
	{"a=1;ProjectId=43", OK},
	{"ProjectId=42;ProjectId=43", CodeProjectMismatch}, // ProjectId = "42;ProjectId=43"
	{"ProjectId=42;", CodeProjectMismatch},
	{"ProjectId;=42", OK}, // the key is "ProjectId;"
	{"x=1&ProjectId=42;x=43", CodeProjectMismatch},

	// Percent-encoded and plus-as-space keys.
	{"Project%49d=43", CodeProjectMismatch},
	{"Project%69d=43", CodeProjectMismatch},
	{"%50%52%4F%4A%45%43%54%49%44=43", CodeProjectMismatch},
	{"%70%72%6f%6a%65%63%74%69%64=43", CodeProjectMismatch},
	{"Project%49d=42", OK},
	{"Project%2549d=43", OK}, // decodes once to "Project%49d"
	{"ProjectId+=43", CodeProjectMismatch},
	{"+ProjectId=43", CodeProjectMismatch},
	{"%20ProjectId%20=43", CodeProjectMismatch},
	{"%09ProjectId%0B%0C%0D%0A=43", CodeProjectMismatch},
	{"Project+Id=43", OK},
	{"Project%20Id=43", OK},
	{"Project%C4%B1d=43", CodeProjectMismatch}, // dotless i
	{"Project%C4%B0d=43", CodeProjectMismatch}, // dotted I
	{"Project\xc4\xb1d=43", CodeInvalidQuery},  // raw non-ASCII: refused
	{"Project\xc4\xb0d=43", CodeInvalidQuery},
	{"Project%C4%B1d=42", OK},
	{"Project%C4d=43", OK},
	{"Project%C4%B2d=43", OK},
	{"ProjectIdx=43", OK},
	{"xProjectId=43", OK},
	{"Project=43", OK},
	{"Projectid2=43", OK},
	{"ProjectIdId=43", OK},

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
	{"x[%20ProjectId%20]=43", CodeProjectMismatch},
	{"[0].ProjectId=43", CodeProjectMismatch},
	{"ProjectId.x=43", CodeProjectMismatch},
	{"ProjectId%2E=43", CodeProjectMismatch},
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
	{"ProjectId=%2534%2532", CodeProjectMismatch},
	{"ProjectId=42.0", CodeProjectMismatch},
	{"ProjectId=4.2e1", CodeProjectMismatch},
	{"ProjectId=0x2a", CodeProjectMismatch},
	{"ProjectId=42=42", CodeProjectMismatch},
	{"ProjectId=", CodeProjectMismatch},
	{"ProjectId", CodeProjectMismatch},
	{"ProjectId&limit=1", CodeProjectMismatch},
	{"ProjectId=42%00", CodeInvalidQuery},
	{"=42", OK},
	{"&&&", OK},
	{"ProjectId=42&", OK},
	{"&ProjectId=42", OK},

	// Escapes that cannot be read one way only, and raw control bytes,
	// whatever the key: the query is refused before any key is read.
	{"ProjectId=%", CodeInvalidQuery},
	{"ProjectId=4%", CodeInvalidQuery},
	{"ProjectId=%3", CodeInvalidQuery},
	{"ProjectId=%zz", CodeInvalidQuery},
	{"ProjectId=%4G", CodeInvalidQuery},
	{"Project%zzId=43", CodeInvalidQuery},
	{"%zz.ProjectId=43", CodeInvalidQuery},
	{"Project%u0049d=43", CodeInvalidQuery},
	{"Project%U0049d=42", CodeInvalidQuery},
	{"a=%u0034", CodeInvalidQuery},
	{"a=b%", CodeInvalidQuery},
	{"%", CodeInvalidQuery},
	{"ProjectId=43&a=%zz", CodeInvalidQuery},
	{"a=\x00", CodeInvalidQuery},
	{"a=\x01&ProjectId=42", CodeInvalidQuery},
	{"a\t=1", CodeInvalidQuery},
	// A raw space or "#" (HTTP/2 carries both in :path): written into the
	// upstream's request line, one would end the target and the other
	// start a fragment, so the API would read another query.
	{"ProjectId=42&x=a b", CodeInvalidQuery},
	{"ProjectId=42 HTTP/1.1", CodeInvalidQuery},
	{"ProjectId=42&x=#y", CodeInvalidQuery},
	{"x=%20%23", OK},
	{"ProjectId=42\n", CodeInvalidQuery},
	{"ProjectId=42\r", CodeInvalidQuery},
	{"a=\x1f", CodeInvalidQuery},
	{"a=\x7f", CodeInvalidQuery},
	{"a=%00", CodeInvalidQuery},
	{"ProjectId%00=43", CodeInvalidQuery},
	{"Project%01Id=43", CodeInvalidQuery},
	{"Project%0aId=43", OK},
	{"a%1f=1&ProjectId=42", CodeInvalidQuery},
	{"a=1%1f&b==%7f", OK},
	{"a=%7F%1f", OK},
	// Bytes outside RFC 3986's query characters (but "[" and "]", as in
	// paths): readers escape, drop or decode them differently, so they
	// must come %XX-escaped.
	{"a=\x80\xff", CodeInvalidQuery},
	{"a=%80%ff", OK},
	{"ProjectId=42&x=\xc3\xa9", CodeInvalidQuery},
	{"x=%C3%A9", OK},
	{"x=\"", CodeInvalidQuery},
	{"x=<", CodeInvalidQuery},
	{"x=>", CodeInvalidQuery},
	{"x=\\", CodeInvalidQuery},
	{"x=^", CodeInvalidQuery},
	{"x=`", CodeInvalidQuery},
	{"x={", CodeInvalidQuery},
	{"x=|", CodeInvalidQuery},
	{"x=}", CodeInvalidQuery},
	{"x%7B=%22%3C%3E%5C%5E%60%7C%7D", OK},
	{"x[y]=1&a=-._~!$'()*+,;:@/?", OK},
	{"a=%41%", CodeInvalidQuery},
	{"a=%%41", CodeInvalidQuery},
}

func TestCheckQueryProject(t *testing.T) {
	for _, tc := range queryCases {
		if got := CheckQueryProject(tc.query, 42); got != tc.want {
			t.Errorf("CheckQueryProject(%q, 42) = %v, want %v", tc.query, got, tc.want)
		}
		if got := refQueryCheck(tc.query, "42"); got != tc.want {
			t.Errorf("the reference: %q = %v, the table %v", tc.query, got, tc.want)
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
	long := strings.Repeat("%41", 100) + "=1&" + strings.Repeat("+", 200) + "Project%49d" + strings.Repeat("%20", 100) + "=42"
	for _, q := range []string{
		"ProjectId=42&limit=10",
		"Status=Active&Region=PIT1&Tier=a&Tag=b&Limit=10&Skip=0&ProjectId=42",
		"filter.ProjectId=42&x[ProjectId]=42",
		"Project%49d=42&a+b=%20",
		long,
		"a=%zz",
	} {
		if n := testing.AllocsPerRun(100, func() { CheckQueryProject(q, 42) }); n != 0 {
			t.Errorf("CheckQueryProject(%q) allocates %v times", q, n)
		}
	}
	if got := CheckQueryProject(long, 42); got != OK {
		t.Errorf("long keys: %v", got)
	}
	if got := CheckQueryProject(strings.Replace(long, "=42", "=43", 1), 42); got != CodeProjectMismatch {
		t.Errorf("long keys, other project: %v", got)
	}
}

// mediaTypeCases: true means accepted.
var mediaTypeCases = []struct {
	contentType string
	ok          bool
}{
	{"application/json", true},
	{"Application/JSON", true},
	{"APPLICATION/JSON", true},
	{"text/json", true},
	{"Text/Json", true},
	{"application/json-patch+json", true},
	{"application/vnd.api+json", true},
	{"application/problem+JSON", true},
	{"application/x+json", true},
	{"application/json+json", true},
	{"application/json; charset=utf-8", true},
	{"application/json;charset=UTF-8", true},
	{"application/json ; charset=\"utf-8\"", true},
	{"application/json;\tcharset=Utf-8", true},
	{"application/json; v=1", true},
	{"application/json; a=b; c=\"d e\"; e=\"f\\\"g\"", true},
	{"application/json; a=\"\"", true},
	{"application/json; a=\"x;y=z\"", true},
	{" application/json ", true},
	{"\tapplication/json\t", true},
	{"application/json; a=1; b=2; c=3; d=4; e=5; f=6; g=7; charset=utf-8", true},

	// Not JSON, or not declared by the API.
	{"", false},
	{" ", false},
	{"text/plain", false},
	{"application/xml", false},
	{"application/octet-stream", false},
	{"application/x-www-form-urlencoded", false},
	{"application/x-www-form-urlencoded; charset=utf-8", false},
	{"multipart/form-data; boundary=x", false},
	{"multipart/mixed", false},
	{"text/vnd.x+json", false},
	{"application/+json", false},
	{"application/json+xml", false},
	{"application/jsonx", false},
	{"application/jso", false},
	{"application/*+json", false},
	{"application/*", false},
	{"*/*", false},
	{"*/json", false},
	{"text/*", false},
	{"json", false},
	{"application", false},

	// Malformed (seen on main: lenient parsers read some of these as a
	// form or a JSON list).
	{"application /x-www-form-urlencoded", false},
	{"application /x-www-form-urlencoded; charset=utf-16", false},
	{"multipart /form-data; boundary=x", false},
	{"application /json", false},
	{"application/ json", false},
	{"application/json x", false},
	{"application/", false},
	{"/json", false},
	{"application//json", false},
	{"application/json/x", false},
	{"application/json;", false},
	{"application/json ;", false},
	{"application/json;;charset=utf-8", false},
	{"application/json; charset", false},
	{"application/json; charset=", false},
	{"application/json; charset =utf-8", false},
	{"application/json; charset= utf-8", false},
	{"application/json; =utf-8", false},
	{"application/json; a=b c", false},
	{"application/json; a=\"unterminated", false},
	{"application/json; a=\"x\"y", false},
	{"application/json; a=\"\\", false},
	{"application/json (comment)", false},
	{"application/json\x00", false},
	{"application/json; a=\"\x01\"", false},
	{"application/json; a=\"\xc3\xa9\"", false},
	{"application/j\xc3\xa9son", false},
	{"application/json\r\n", false},

	// Lists: a comma anywhere, several fields joined.
	{"application/json, text/plain", false},
	{"application/json,application/json", false},
	{"application/json, application/x-www-form-urlencoded", false},
	{"application/json; charset=utf-8,", false},
	{"application/json; a=\"x,y\"", false},
	{"application/json; a=\"x\\,y\"", false},
	{", application/json", false},

	// Charsets: utf-8 only.
	{"application/json; charset=utf-16", false},
	{"application/json; charset=\"utf-16\"", false},
	{"application/json; charset=UTF-16LE", false},
	{"application/json; charset=utf8", false},
	{"application/json; charset=latin1", false},
	{"application/json; charset=us-ascii", false},
	{"application/json; charset=\"utf\\-8\"", false},
	{"application/json; charset=\" utf-8\"", false},
	{"application/json; charset=\"\"", false},
	{"application/json; Charset=utf-16", false},

	// Duplicate parameters, in any case; too many parameters.
	{"application/json; charset=utf-8; charset=utf-8", false},
	{"application/json; charset=utf-8; CHARSET=utf-16", false},
	{"application/json; Charset=utf-8; charset=utf-8", false},
	{"application/json; a=1; A=2", false},
	{"application/json; a=1; b=2; c=3; d=4; e=5; f=6; g=7; h=8; i=9", false},
}

func TestCheckMediaType(t *testing.T) {
	for _, tc := range mediaTypeCases {
		want := CodeUnsupportedMediaType
		if tc.ok {
			want = OK
		}
		if got := CheckMediaType(tc.contentType); got != want {
			t.Errorf("CheckMediaType(%q) = %v, want %v", tc.contentType, got, want)
		}
		if got := refMediaTypeOK(tc.contentType); got != tc.ok {
			t.Errorf("the reference: %q = %v, the table %v", tc.contentType, got, tc.ok)
		}
	}
}

func TestCheckMediaTypeAllocs(t *testing.T) {
	for _, ct := range []string{"application/json; charset=utf-8", "application/json; a=1; b=2; c=3; d=4; e=5; f=6; g=7; h=8; i=9", "x"} {
		if n := testing.AllocsPerRun(100, func() { CheckMediaType(ct) }); n != 0 {
			t.Errorf("CheckMediaType(%q) allocates %v times", ct, n)
		}
	}
}

// TestCheckBodyPresence checks what comes before the media type and the
// JSON: empty bodies, routes without a body, Content-Encoding.
func TestCheckBodyPresence(t *testing.T) {
	for _, tc := range []struct {
		takesBody   bool
		ct, ce      string
		body        string
		complete    bool
		want        Code
		description string
	}{
		{false, "", "", "", true, OK, "no body, route without one"},
		{true, "", "", "", true, OK, "no body, route with one"},
		{false, "text/plain", "gzip", "", true, OK, "no body, any headers"},
		{false, ctJSON, "", `{"projectId":42}`, true, CodeBodyNotAllowed, "JSON body, route without one"},
		{false, "application/x-www-form-urlencoded", "", "projectId=43", true, CodeBodyNotAllowed, "form body, route without one"},
		{false, "", "", " ", true, CodeBodyNotAllowed, "one space"},
		{false, ctJSON, "", `{"projectId":4`, false, CodeBodyNotAllowed, "cut body, route without one"},
		{true, ctJSON, "gzip", `{"projectId":42}`, true, CodeUnsupportedMediaType, "Content-Encoding"},
		{true, ctJSON, "identity", `{"projectId":42}`, true, CodeUnsupportedMediaType, "Content-Encoding identity"},
		{true, ctJSON, ", ", `{"projectId":42}`, true, CodeUnsupportedMediaType, "two empty Content-Encoding fields"},
		{true, "", "", `{"projectId":42}`, true, CodeUnsupportedMediaType, "no Content-Type"},
		{true, ctJSON, "", `{"projectId":42}`, true, OK, "JSON"},
		{true, "application/json, text/plain", "", `/**/{"projectId":43}`, true, CodeUnsupportedMediaType, "seen on main: a list"},
		{true, "application /x-www-form-urlencoded", "", `projectId=43`, true, CodeUnsupportedMediaType, "seen on main: a space"},
		{true, "application /x-www-form-urlencoded; charset=utf-16", "", "p\x00r\x00o\x00j\x00e\x00c\x00t\x00I\x00d\x00=\x004\x003\x00", true, CodeUnsupportedMediaType, "seen on main: UTF-16"},
		{true, "multipart /form-data; boundary=x", "", "--x\r\nContent-Disposition: form-data; name=\"projectId\"\r\n\r\n43\r\n--x--\r\n", true, CodeUnsupportedMediaType, "seen on main: multipart"},
		{true, "application/x-www-form-urlencoded", "", `projectId=42`, true, CodeUnsupportedMediaType, "form bodies are not JSON"},
		{true, "multipart/form-data; boundary=x", "", "--x--\r\n", true, CodeUnsupportedMediaType, "multipart bodies are not JSON"},
		{true, "text/plain", "", `{"projectId":42}`, true, CodeUnsupportedMediaType, "JSON as text/plain"},
	} {
		if got := CheckBody(tc.takesBody, tc.ct, tc.ce, []byte(tc.body), tc.complete, 42); got != tc.want {
			t.Errorf("%s: CheckBody(%v, %q, %q, %q, %v) = %v, want %v", tc.description, tc.takesBody, tc.ct, tc.ce, tc.body, tc.complete, got, tc.want)
		}
	}
}

type bodyCase struct {
	body     string
	complete bool
	want     Code
}

const ctJSON = "application/json"

// bodyCases are JSON bodies checked against project 42.
var bodyCases = []bodyCase{
	// Empty and white-space bodies: no JSON document.
	{"", true, CodeInvalidBody},
	{"  \n", true, CodeInvalidBody},
	{"\xef\xbb\xbf", true, CodeInvalidBody},
	{"  ", false, CodeBodyTooLarge},
	{"", false, CodeBodyTooLarge},

	// Top level.
	{`{"projectId":42}`, true, OK},
	{`{"projectId":43}`, true, CodeProjectMismatch},
	{"\t\r\n {\"projectId\":43}", true, CodeProjectMismatch},
	{"\xef\xbb\xbf{\"projectId\":43}", true, CodeProjectMismatch},
	{"\xef\xbb\xbf{\"projectId\":42}", true, OK},
	{"\xef\xbb\xbf \xef\xbb\xbf{}", true, CodeInvalidBody},
	{"\xef\xbb", false, CodeBodyTooLarge},
	{"\xef\xbb", true, CodeInvalidBody},
	{`hello`, true, CodeInvalidBody},
	{`projectId=43`, true, CodeInvalidBody},
	{`"projectId"`, true, OK},
	{`43`, true, OK},
	{`null`, true, OK},
	{`[]`, true, OK},

	// Keys: case, escapes, Turkish i, duplicates.
	{`{"ProjectId":43}`, true, CodeProjectMismatch},
	{`{"PROJECTID":43}`, true, CodeProjectMismatch},
	{`{"project\u0049d":43}`, true, CodeProjectMismatch},
	{`{"\u0070\u0072\u006f\u006a\u0065\u0063\u0074\u0069\u0064":43}`, true, CodeProjectMismatch},
	{`{"\u0050ROJECT\u0049D":43}`, true, CodeProjectMismatch},
	{`{"project\u0131d":43}`, true, CodeProjectMismatch},
	{`{"project\u0130d":43}`, true, CodeProjectMismatch},
	{"{\"project\xc4\xb1d\":43}", true, CodeProjectMismatch},
	{"{\"PROJECT\xc4\xb0D\":43}", true, CodeProjectMismatch},
	{"{\"project\xc4\xb1d\":42}", true, OK},
	{`{"project\u0049d":42}`, true, OK},
	{`{"projectId ":43}`, true, OK},
	{`{" projectId":43}`, true, OK},
	{`{"project_id":43}`, true, OK},
	{`{"project\u0000Id":43}`, true, OK},
	{`{"filter.projectId":43}`, true, OK},
	{`{"projectIdx":43, "xprojectId":43}`, true, OK},
	{`{"projectId":42,"projectId":43}`, true, CodeProjectMismatch},
	{`{"projectId":43,"projectId":42}`, true, CodeProjectMismatch},
	{`{"projectId":42,"ProjectID":42,"projectid":"42"}`, true, OK},

	// Any depth, arrays too (seen on main: only top-level keys were read).
	{`{"projectId":42,"service":{"projectId":43}}`, true, CodeProjectMismatch},
	{`{"a":{"projectId":43}}`, true, CodeProjectMismatch},
	{`{"a":[{"projectId":43}]}`, true, CodeProjectMismatch},
	{`[{"projectId":43}]`, true, CodeProjectMismatch},
	{`[1,[2,[{"b":{"PROJECTID":"43"}}]]]`, true, CodeProjectMismatch},
	{`{"a":{"projectId":42},"b":[{"projectId":"42"}]}`, true, OK},
	{`{"a":{"b":{"c":{"d":{"projectId":null}}}}}`, true, CodeProjectMismatch},
	{`{"a":"{\"projectId\":43}"}`, true, OK},
	{`{"a":1,"b":[1,2,{"c":null}],"projectId":42,"d":true}`, true, OK},
	{`{"a":1,"b":[1,2,{"c":null}],"projectId":43,"d":true}`, true, CodeProjectMismatch},
	{strings.Repeat(`{"a":`, 300) + `{"projectId":43}` + strings.Repeat("}", 300), true, CodeProjectMismatch},
	{strings.Repeat(`[`, 300) + `{"projectId":42}` + strings.Repeat("]", 300), true, OK},

	// Values.
	{`{"projectId":"42"}`, true, OK},
	{`{"projectId":"\u0034\u0032"}`, true, OK},
	{`{"projectId":"43"}`, true, CodeProjectMismatch},
	{`{"projectId":"042"}`, true, CodeProjectMismatch},
	{`{"projectId":" 42"}`, true, CodeProjectMismatch},
	{`{"projectId":"42 "}`, true, CodeProjectMismatch},
	{`{"projectId":"+42"}`, true, CodeProjectMismatch},
	{`{"projectId":""}`, true, CodeProjectMismatch},
	{`{"projectId":"424242424242424242424242424242"}`, true, CodeProjectMismatch},
	{`{"projectId":42.0}`, true, CodeProjectMismatch},
	{`{"projectId":4.2e1}`, true, CodeProjectMismatch},
	{`{"projectId":42e0}`, true, CodeProjectMismatch},
	{`{"projectId":-42}`, true, CodeProjectMismatch},
	{`{"projectId":null}`, true, CodeProjectMismatch},
	{`{"projectId":true}`, true, CodeProjectMismatch},
	{`{"projectId":false}`, true, CodeProjectMismatch},
	{`{"projectId":[42]}`, true, CodeProjectMismatch},
	{`{"projectId":{"id":42}}`, true, CodeProjectMismatch},
	{`{"projectId":{}}`, true, CodeProjectMismatch},
	{`{"projectId":042}`, true, CodeProjectMismatch}, // the number is 0, then junk
	{` { "projectId" : 42 } `, true, OK},
	{"{\n\t\"projectId\":\r\n42\n}\n", true, OK},

	// JSON Patch: a path or from naming the project, whatever the value.
	{`[{"op":"replace","path":"/projectId","value":43}]`, true, CodeProjectMismatch},
	{`[{"op":"replace","path":"/projectId","value":42}]`, true, CodeProjectMismatch},
	{`[{"op":"replace","path":"/ProjectID","value":"42"}]`, true, CodeProjectMismatch},
	{`[{"op":"copy","from":"/projectId","path":"/name"}]`, true, CodeProjectMismatch},
	{`[{"op":"move","FROM":"/a/projectid/b","path":"/x"}]`, true, CodeProjectMismatch},
	{`{"Path":"/a/PROJECTID"}`, true, CodeProjectMismatch},
	{`{"pAtH":"projectId"}`, true, CodeProjectMismatch},
	{`{"path":"/projectId/"}`, true, CodeProjectMismatch},
	{`{"path":"//projectId//"}`, true, CodeProjectMismatch},
	{`{"path":"/a~1/projectId"}`, true, CodeProjectMismatch},
	{`{"path":"/pro\u006aectId"}`, true, CodeProjectMismatch},
	{`{"p\u0061th":"/projectId"}`, true, CodeProjectMismatch},
	{`{"path":"/project\u0131d"}`, true, CodeProjectMismatch},
	{"{\"path\":\"/PROJECT\xc4\xb0D\"}", true, CodeProjectMismatch},
	{`{"value":{"path":"/projectId"}}`, true, CodeProjectMismatch},
	{`[{"op":"add","path":"/tags/-","value":{"projectId":43}}]`, true, CodeProjectMismatch},
	{`[{"op":"replace","path":"/name","value":"projectId"}]`, true, OK},
	{`[{"op":"replace","path":"/project~1Id","value":1}]`, true, OK},
	{`[{"op":"replace","path":"/project~0Id","value":1}]`, true, OK},
	{`[{"op":"replace","path":"/~1projectId","value":1}]`, true, OK},
	{`[{"op":"replace","path":"/projectId~","value":1}]`, true, OK},
	{`[{"op":"replace","path":"/projectId~2","value":1}]`, true, OK},
	{`[{"op":"replace","path":"/project%49d","value":1}]`, true, OK},
	{`[{"op":"replace","path":"/projectIdx","value":1}]`, true, OK},
	{`[{"op":"replace","path":"/ projectId","value":1}]`, true, OK},
	{`[{"op":"replace","pathx":"/projectId","value":1}]`, true, OK},
	{`{"path":42,"from":null,"x":{"path":["/projectId"]}}`, true, OK},
	{`{"path":{"projectId":43}}`, true, CodeProjectMismatch},
	{`{"path":"/projectId`, false, CodeBodyTooLarge},
	{`{"path":"/projectId"`, false, CodeProjectMismatch},

	// Malformed JSON (seen on main: a comment before the object).
	{`/**/{"projectId":43}`, true, CodeInvalidBody},
	{`{"projectId":42}//`, true, CodeInvalidBody},
	{`{"a":1 /* x */}`, true, CodeInvalidBody},
	{`{`, true, CodeInvalidBody},
	{`{"projectId":42`, true, CodeInvalidBody},
	{`{"projectId":42,}`, true, CodeInvalidBody},
	{`{"a":01}`, true, CodeInvalidBody},
	{`{projectId:43}`, true, CodeInvalidBody},
	{`{'projectId':43}`, true, CodeInvalidBody},
	{`{"a":"\x"}`, true, CodeInvalidBody},
	{"{\"a\":\"\x01\"}", true, CodeInvalidBody},
	{`{"a":"\u12"}`, true, CodeInvalidBody},
	{`{"a":tru}`, true, CodeInvalidBody},
	{`{"a":1}{"projectId":43}`, true, CodeInvalidBody},
	{`{"a":1} x`, true, CodeInvalidBody},
	{`{"a":1}}`, true, CodeInvalidBody},
	{`{"a" 1}`, true, CodeInvalidBody},
	{`{"a":[1,]}`, true, CodeInvalidBody},
	{`{"a":-}`, true, CodeInvalidBody},
	{`{"a":1.}`, true, CodeInvalidBody},
	{`{"a":1e}`, true, CodeInvalidBody},
	{`{"a":NaN}`, true, CodeInvalidBody},
	{`{"a":+1}`, true, CodeInvalidBody},
	{`[1,2`, true, CodeInvalidBody},
	{"{\"a\":1}\x00", true, CodeInvalidBody},
	{"{\"a\":1}\v", true, CodeInvalidBody},
	{"\f{}", true, CodeInvalidBody},
	{strings.Repeat("[", maxJSONDepth+1) + strings.Repeat("]", maxJSONDepth+1), true, CodeInvalidBody},
	{strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth), true, OK},
	{strings.Repeat(`{"a":`, maxJSONDepth+1) + "1" + strings.Repeat("}", maxJSONDepth+1), true, CodeInvalidBody},
	{strings.Repeat(`{"a":`, maxJSONDepth) + "1" + strings.Repeat("}", maxJSONDepth), true, OK},

	// UTF-8 and surrogates: System.Text.Json refuses what is not UTF-8
	// and escaped surrogates that do not pair.
	{"{\"a\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}", true, OK},
	{"{\"a\":\"\xff\"}", true, CodeInvalidBody},
	{"{\"a\":\"\xc4\"}", true, CodeInvalidBody},
	{"{\"project\xc4d\":43}", true, CodeInvalidBody},
	{"{\"a\":\"\xc0\xaf\"}", true, CodeInvalidBody},
	{"{\"a\":\"\xed\xa0\x80\"}", true, CodeInvalidBody},
	{"{\"a\":\"\xf4\x90\x80\x80\"}", true, CodeInvalidBody},
	{"{\"a\":\"\xe2\x82", false, CodeBodyTooLarge},
	{"{\"a\":\"\xe2\x82", true, CodeInvalidBody},
	{"{\"a\":\"\xe2\x28", false, CodeInvalidBody},
	{`{"\ud83d\ude00":1,"projectId":42}`, true, OK},
	{`{"\ud83d\ude00":1,"projectId":43}`, true, CodeProjectMismatch},
	{`{"\ud800projectId":43}`, true, CodeInvalidBody},
	{`{"a":"\udc00\u0041"}`, true, CodeInvalidBody},
	{`{"a":"\ud800\u0041"}`, true, CodeInvalidBody},
	{`{"a":"\ud800"}`, true, CodeInvalidBody},
	{`{"a":"\ud800\n"}`, true, CodeInvalidBody},
	{`{"a":"\ud800\ud800"}`, true, CodeInvalidBody},
	{`{"a":"\ud800\`, false, CodeBodyTooLarge},
	{`{"a":"\ud800\u`, false, CodeBodyTooLarge},
	{`{"a":"\ud800\udc`, false, CodeBodyTooLarge},
	{`{"a":"\ud800x`, false, CodeInvalidBody},

	// Cut prefixes.
	{`{"projectId":42,"name":"x`, false, CodeBodyTooLarge},
	{`{"name":"x","proj`, false, CodeBodyTooLarge},
	{`{"projectId":4`, false, CodeBodyTooLarge},
	{`{"projectId":42`, false, CodeBodyTooLarge},
	{`{"projectId":"4`, false, CodeBodyTooLarge},
	{`{"a":"\u00`, false, CodeBodyTooLarge},
	{`{"a":"\`, false, CodeBodyTooLarge},
	{`{"a":tr`, false, CodeBodyTooLarge},
	{`{"a":-`, false, CodeBodyTooLarge},
	{`{"a":1.5e`, false, CodeBodyTooLarge},
	{`{"a":[{"b":{`, false, CodeBodyTooLarge},
	{`{"projectId":43,"name":"x`, false, CodeProjectMismatch},
	{`{"a":{"projectId":43},"name":"x`, false, CodeProjectMismatch},
	{`{"a":tx`, false, CodeInvalidBody},
	{`{"a":"\q`, false, CodeInvalidBody},
	{`{"a":"\u00zz`, false, CodeInvalidBody},
	{`{"projectId":42}`, false, CodeBodyTooLarge},
	{`{"projectId":42}  `, false, CodeBodyTooLarge},
	{"{\"projectId\":42}\n", false, CodeBodyTooLarge},
	{`{"projectId":42} x`, false, CodeInvalidBody},
	{`[1,2`, false, CodeBodyTooLarge},
	{`42`, false, CodeBodyTooLarge},
}

func TestCheckJSONProject(t *testing.T) {
	for _, tc := range bodyCases {
		if got := CheckJSONProject([]byte(tc.body), tc.complete, 42); got != tc.want {
			t.Errorf("CheckJSONProject(%.80q, %v, 42) = %v, want %v", tc.body, tc.complete, got, tc.want)
		}
		// Through CheckBody, with every accepted media type.
		if tc.body == "" && tc.complete {
			continue
		}
		for _, ct := range []string{ctJSON, "text/json; charset=utf-8", "application/json-patch+json"} {
			if got := CheckBody(true, ct, "", []byte(tc.body), tc.complete, 42); got != tc.want {
				t.Errorf("CheckBody(%q, %.80q, %v, 42) = %v, want %v", ct, tc.body, tc.complete, got, tc.want)
			}
		}
	}
}

// TestCheckJSONProjectReference checks the table's complete bodies
// against the reference walk of the fuzz tests: whatever passes names no
// other project there either.
func TestCheckJSONProjectReference(t *testing.T) {
	for _, tc := range bodyCases {
		if !tc.complete {
			continue
		}
		got := CheckJSONProject([]byte(tc.body), true, 42)
		if bad := refJSONMismatch([]byte(tc.body), "42"); got == OK && bad != "" {
			t.Errorf("%.80q passed, but the reference finds %s", tc.body, bad)
		}
	}
}

// TestCheckJSONProjectPrefixes cuts valid bodies at every length: a cut
// body must never pass, and a cut valid body is refused as too large,
// never as malformed.
func TestCheckJSONProjectPrefixes(t *testing.T) {
	for _, body := range []string{
		`{"projectId":42,"name":"a\"b\u0041\ud83d\ude00é","tags":["x",{"y":[1,2.5e-3,true,false,null]}],"n":-0.5E+2}`,
		"\xef\xbb\xbf" + ` {"a":{"projectId":42}, "PROJECTID" : "42", "path":"/a/b~1c", "ops":[{"op":"add","from":"/x"}]} `,
	} {
		if got := CheckJSONProject([]byte(body), true, 42); got != OK {
			t.Fatalf("whole body %q: %v", body, got)
		}
		for n := 0; n < len(body); n++ {
			if got := CheckJSONProject([]byte(body[:n]), false, 42); got != CodeBodyTooLarge {
				t.Errorf("prefix %q: %v, want body_too_large", body[:n], got)
			}
		}
	}
}

// TestSDKRequests checks requests as TeraSwitch's own SDK (gotsw) and the
// Terraform provider send them: JSON from encoding/json (with its
// trailing newline), Content-Type application/json, the project as a
// top-level projectId or in the query.
func TestSDKRequests(t *testing.T) {
	for _, q := range []string{"ProjectId=42", "projectId=42", "Limit=10&ProjectId=42&Skip=0&Status=Active&Tag=web", "command=PowerOn", "metalTierType=GPU&projectId=42"} {
		if got := CheckQueryProject(q, 42); got != OK {
			t.Errorf("SDK query %q: %v", q, got)
		}
	}
	for _, body := range []string{
		"{\"displayName\":\"web-1\",\"regionId\":\"PIT1\",\"tierId\":\"c1\",\"memoryGb\":64,\"imageId\":\"ubuntu\",\"tags\":null,\"sshKeyIds\":[1],\"disks\":{\"nvme0n1\":\"960g\"},\"ipxeUrl\":null,\"userData\":\"#cloud-config\\n\",\"reservePricing\":false}\n",
		"{\"projectId\":42,\"displayName\":\"k\",\"key\":\"ssh-ed25519 AAAA x@y\"}\n",
		"{\"projectId\":42,\"displayName\":\"new name\"}\n",
		"{\"displayName\":\"x\",\"imageId\":\"debian\",\"sshKeyIds\":[1,2],\"partitions\":[{\"name\":\"/\",\"device\":\"md0\",\"sizeBytes\":1073741824}]}\n",
	} {
		if got := CheckBody(true, "application/json", "", []byte(body), true, 42); got != OK {
			t.Errorf("SDK body %q: %v", body, got)
		}
	}
}

func TestCheckBodyAllocs(t *testing.T) {
	body := []byte(`{"name":"web-1","projectId":42,"regionId":"PIT1","tags":["a","b"],"sshKeyIds":[1,2],"project\u0049d":"42","n":{"projectId":42},"ops":[{"path":"/a/b","from":"/c"}],"s":"é\ud83d\ude00"}`)
	if n := testing.AllocsPerRun(100, func() { CheckBody(true, "application/json; charset=utf-8", "", body, true, 42) }); n != 0 {
		t.Errorf("CheckBody allocates %v times", n)
	}
}

func BenchmarkCheckQueryProject(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		CheckQueryProject("Status=Active&Region=PIT1&Limit=10&Skip=0&ProjectId=42", 42)
	}
}

func BenchmarkCheckBody(b *testing.B) {
	body := []byte(`{"displayName":"web-1","projectId":42,"regionId":"PIT1","tierId":"c1.small","imageId":"ubuntu-24.04","sshKeyIds":[1,2],"tags":["prod","web"],"userData":"#cloud-config\npackages: [nginx]\n"}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		CheckBody(true, "application/json", "", body, true, 42)
	}
}

func BenchmarkCheckMediaType(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		CheckMediaType("application/json; charset=utf-8")
	}
}
