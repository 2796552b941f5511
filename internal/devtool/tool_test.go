package devtool

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestToolMain(t *testing.T) {
	type opts struct{ fail, broken bool }
	tool := Tool[opts]{
		Name: "tool",
		Parse: func(args []string, stderr io.Writer) (opts, error) {
			var o opts
			fs := NewFlagSet("tool", "Does things.", stderr)
			fs.BoolVar(&o.fail, "fail", false, "fail the checks")
			fs.BoolVar(&o.broken, "broken", false, "fail the run")
			_, err := ParseFlags(fs, args)
			return o, err
		},
		Out: func(opts) string { return "" },
		Run: func(_ context.Context, o opts, _ io.Writer) (string, string, error) {
			switch {
			case o.broken:
				return "", "", errors.New("no luck")
			case o.fail:
				return "# report\n", "FAILED: see the report", nil
			}
			return "# report\n", "", nil
		},
		Interrupted: "interrupted",
	}
	for _, tc := range []struct {
		args           []string
		code           int
		stdout, stderr string
	}{
		{nil, 0, "# report\n", ""},
		{[]string{"-fail"}, 1, "# report\n", "tool: FAILED: see the report\n"},
		{[]string{"-broken"}, 1, "", "tool: no luck\n"},
		{[]string{"extra"}, 2, "", "tool: unexpected arguments: extra\n"},
		{[]string{"-h"}, 0, "", "Usage: go run ./tools/tool [flags]\n\nDoes things.\n\nFlags:\n"},
	} {
		var stdout, stderr strings.Builder
		code := tool.Main(tc.args, &stdout, &stderr)
		if code != tc.code || stdout.String() != tc.stdout || !strings.HasPrefix(stderr.String(), tc.stderr) {
			t.Errorf("Main(%q) = %d, stdout %q, stderr %q; want %d, %q, %q…", tc.args, code, stdout.String(), stderr.String(), tc.code, tc.stdout, tc.stderr)
		}
	}
}
