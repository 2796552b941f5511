package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tswgate/tswgate/auth/tokenapi"
)

// TestPrintedTextCannotDriveTheTerminal: names and details from the API
// are printed escaped when they hold anything but printable characters
// (terminal escapes, bidirectional controls, tabs that would shift the
// table), and as they are otherwise.
func TestPrintedTextCannotDriveTheTerminal(t *testing.T) {
	for in, want := range map[string]string{
		"deploy":                   "deploy",
		"ci bot ✓":                 "ci bot ✓",
		"x\x1b]0;pwned\x07\x1b[2J": `"x\x1b]0;pwned\a\x1b[2J"`,
		"ci-\u202egnp.yolped":      `"ci-\u202egnp.yolped"`,
		"a\tb":                     `"a\tb"`,
	} {
		if got := cell(in); got != want {
			t.Errorf("cell(%q) = %s, want %s", in, got, want)
		}
	}
	var out bytes.Buffer
	evil := tokenapi.Token{ID: "tsw_0123456789abcdefghij", Name: "x\x1b[2J\u202e", Role: "owner", Status: "active"}
	if err := showToken(&out, evil, "table"); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(out.String(), "\x1b\u202e") {
		t.Errorf("showToken printed a control character raw:\n%q", out.String())
	}
}
