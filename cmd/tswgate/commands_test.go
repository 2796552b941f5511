package main

import (
	"os"
	"strings"
	"testing"
)

// TestCommandsTable: every command of the table is found by its name,
// once, and runs.
func TestCommandsTable(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range commands {
		if seen[c.name] {
			t.Errorf("command %q is listed twice", c.name)
		}
		seen[c.name] = true
		if c.run == nil {
			t.Errorf("command %q has no run function", c.name)
		}
		got, _, err := lookup(strings.Fields(c.name))
		if err != nil || got == nil || got.name != c.name {
			t.Errorf("lookup(%q) = %v, %v", c.name, got, err)
		}
	}
}

// TestCommandsDocumented: docs/token-api.md shows the commands as
// `tswgate help` lists them (from the commands table).
func TestCommandsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/token-api.md")
	if err != nil {
		t.Fatal(err)
	}
	want := "```text\n" + commandsUsage() + "```\n"
	if !strings.Contains(string(doc), want) {
		t.Errorf("docs/token-api.md does not list the commands as tswgate help does; put this block under \"The CLI\":\n%s", want)
	}
}

// TestCommandsHelp: "-h" after each command (and after "token" and
// "policy" alone) prints that command's help, naming it, and succeeds;
// an unknown policy subcommand is a usage error found before the admin
// API is looked for.
func TestCommandsHelp(t *testing.T) {
	var asks [][]string
	for _, c := range commands {
		if c.name != "version" { // version takes no flags: it prints the version
			asks = append(asks, append(strings.Fields(c.name), "-h"))
		}
	}
	asks = append(asks, []string{"token", "-h"}, []string{"token", "--help"}, []string{"policy", "--help"},
		[]string{"policy", "set", "-h"})
	for _, args := range asks {
		res := MustRun(t, nil, args...)
		name := "tswgate " + args[0]
		if len(args) > 2 {
			name += " " + args[1]
		}
		if res.code != 0 || !strings.Contains(res.stdout+res.stderr, name) || strings.Contains(res.stderr, "tswgate: ") {
			t.Errorf("tswgate %s: want exit 0 and a help naming %q: %v", strings.Join(args, " "), name, res)
		}
	}
	res := MustRun(t, nil, "policy", "bogus", "--project", "42")
	if res.code != 2 || !strings.Contains(res.stderr, `unknown policy subcommand "bogus"`) {
		t.Errorf("tswgate policy bogus: want exit 2 naming the subcommand: %v", res)
	}
}
