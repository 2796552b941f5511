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
