package devtool

import (
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var hundred []time.Duration
	for i := 1; i <= 100; i++ {
		hundred = append(hundred, time.Duration(i))
	}
	if got := Percentile(hundred, 99); got != 99 {
		t.Errorf("p99 of 1..100 = %v, want 99", got)
	}
	if got := Percentile(hundred, 50); got != 50 {
		t.Errorf("p50 of 1..100 = %v, want 50", got)
	}
	if got := Percentile(hundred[:1], 99); got != 1 {
		t.Errorf("p99 of one value = %v, want it", got)
	}
	if got := Percentile(nil, 50); got != 0 {
		t.Errorf("p50 of none = %v, want 0", got)
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{7}, 7},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{10, 10, 1000}, 10}, // an outlier round does not move it
	} {
		in := append([]float64(nil), tc.in...)
		if got := Median(in); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.in, got, tc.want)
		}
		for i := range in {
			if in[i] != tc.in[i] {
				t.Errorf("Median(%v) reordered its argument to %v", tc.in, in)
				break
			}
		}
	}
}

func TestFormatting(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{FormatLatency(0), "0"},
		{FormatLatency(42 * time.Microsecond), "42.0 µs"},
		{FormatLatency(999 * time.Microsecond), "999 µs"},
		{FormatLatency(1234 * time.Microsecond), "1.23 ms"},
		{FormatLatency(23500 * time.Microsecond), "23.5 ms"},
		{FormatLatency(1500 * time.Millisecond), "1.50 s"},
		{Sig3(99.96), "100"},
		{Sig3(9.996), "10.0"},
		{Sig3(1.234), "1.23"},
		{MDEscape("a|b\nc`d"), `a\|b c'd`},
		{MDCode("a `b`"), "a 'b'"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestMachineFactHelpers(t *testing.T) {
	cpuinfo := "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\n"
	if got := cpuModel(strings.NewReader(cpuinfo)); got != "AMD EPYC 7B13" {
		t.Errorf("cpuModel = %q", got)
	}
	if got := cpuModel(strings.NewReader("processor : 0\n")); got != "unknown CPU" {
		t.Errorf("cpuModel without a model = %q", got)
	}
	idle, total, err := parseCPUTimes("cpu  10 1 5 80 4 0 0 0 0 0\ncpu0 5 0 2 40 2 0 0 0 0 0\n")
	if err != nil || idle != 84 || total != 100 {
		t.Errorf("parseCPUTimes = %d, %d, %v; want 84, 100", idle, total, err)
	}
	if _, _, err := parseCPUTimes("intr 1 2 3\n"); err == nil {
		t.Error("parseCPUTimes without a cpu line succeeded")
	}
	f := MachineFacts()
	if f.NProc < 1 || !strings.HasPrefix(f.GoVersion, "go") || f.CPUModel == "" {
		t.Errorf("MachineFacts = %+v", f)
	}
}

func TestWriteReport(t *testing.T) {
	var stdout, stderr strings.Builder
	path := t.TempDir() + "/sub/report.md"
	if !WriteReport(&stdout, &stderr, "tool", path, "# hi\n") {
		t.Fatalf("WriteReport failed: %s", stderr.String())
	}
	if stdout.String() != "# hi\n" || stderr.String() != "tool: wrote "+path+"\n" {
		t.Errorf("stdout %q, stderr %q", stdout.String(), stderr.String())
	}
	stderr.Reset()
	if WriteReport(&stdout, &stderr, "tool", path+"/x", "# hi\n") || !strings.HasPrefix(stderr.String(), "tool: -out: ") {
		t.Errorf("writing under a file: stderr %q", stderr.String())
	}
}
