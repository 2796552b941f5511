package secretscan

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func FuzzParseReport(f *testing.F) {
	for _, s := range []string{
		`[{"token":"NMIfyYncKcRALEXAMPLE","type":"mycompany_api_token","url":"https://github.com/octocat/Hello-World/blob/12345600b9cbe38a219f39a9941c9319b600c002/foo/bar.txt","source":"content"}]`,
		`[]`, `[{"token":""}]`, `[{"token":"a"},{"token":"b","extra":[1,{"x":null}]}]`, `[null]`, `[1]`, `{}`, `[`,
		`[{"token":"\u0074sw_"}] `, `[{"token":"a","token":"b"}]`, `[{"TOKEN":"a"}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		reports, err := ParseReport(body, 50)
		if err != nil {
			if reports != nil {
				t.Fatalf("reports with an error: %v", reports)
			}
			return
		}
		if len(reports) > 50 {
			t.Fatalf("%d reports past the bound", len(reports))
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		again, err := json.Marshal(reports)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseReport(again, 50)
		if err != nil || !reflect.DeepEqual(back, reports) {
			t.Fatalf("round trip: %v, %v != %v", err, back, reports)
		}
	})
}

func TestRedactAndDetail(t *testing.T) {
	long := strings.Repeat("é", 400) + "tswsk_abcdef"
	got := redact(long, 100)
	if len(got) > 100 || !strings.HasSuffix(got, "…") || strings.Contains(got, "\uFFFD") {
		t.Errorf("redact cut %q", got)
	}
	if got := redact("x tswsk_abcdef y", 100); got != "x tswsk_[REDACTED] y" {
		t.Errorf("redact = %q", got)
	}
	d := detail(origin{actorKind: ActorSecretScanning, reporter: "github",
		report: Report{URL: "https://github.com/o/r", Source: "commit", Type: "t"}})
	if d != "leaked: reported by github secret scanning (type t, source commit) at https://github.com/o/r" {
		t.Errorf("detail = %q", d)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.Refused(CodeSignatureInvalid)
	m.Checked(ActorSecretScanning, TruePositive)
	m.Answered(3, time.Millisecond)
	if v := testutil.ToFloat64(m.refused.WithLabelValues(CodeSignatureInvalid)); v != 1 {
		t.Errorf("refused = %v", v)
	}
	if v := testutil.ToFloat64(m.checked.WithLabelValues(ActorSecretScanning, "true_positive")); v != 1 {
		t.Errorf("checked = %v", v)
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Error("registered twice")
	}
}
