package main

import (
	"regexp"
	"strings"
	"testing"
)

// helpAsks are the command lines of every command and subcommand with
// room for a flag: each command of the table, and each policy and
// webhook subcommand.
func helpAsks() [][]string {
	var asks [][]string
	for _, c := range commands {
		switch c.name {
		case "policy":
			for _, sub := range []string{"show", "set", "clear", "violations"} {
				asks = append(asks, []string{"policy", sub})
			}
		case "webhook":
			for _, sub := range []string{"list", "create", "delete", "rotate", "deliveries", "replay", "test"} {
				asks = append(asks, []string{"webhook", sub})
			}
		default:
			asks = append(asks, strings.Fields(c.name))
		}
	}
	return asks
}

// TestHelpOnStdout: every command's -h and --help print its help on
// stdout, nothing on stderr, and exit 0.
func TestHelpOnStdout(t *testing.T) {
	env := []string{"TSWGATE_ADMIN_URL=" + MustDeadURL(t), "TSWGATE_ADMIN_KEY=" + testAdminKey}
	for _, args := range helpAsks() {
		for _, h := range []string{"-h", "--help"} {
			res := MustRun(t, env, append(args, h)...)
			if res.code != 0 || !strings.Contains(res.stdout, "Usage") || res.stderr != "" {
				t.Errorf("tswgate %s %s: want exit 0, the help on stdout and nothing on stderr: %v", strings.Join(args, " "), h, res)
			}
		}
	}
}

// TestBadFlagIsUsageError: an unknown flag on any command exits 2 with
// the error, once, and the usage on stderr, and nothing on stdout.
func TestBadFlagIsUsageError(t *testing.T) {
	env := []string{"TSWGATE_ADMIN_URL=" + MustDeadURL(t), "TSWGATE_ADMIN_KEY=" + testAdminKey}
	for _, args := range helpAsks() {
		res := MustRun(t, env, append(args, "--no-such-flag")...)
		if res.code != 2 || res.stdout != "" || !strings.Contains(res.stderr, "Usage:") ||
			strings.Count(res.stderr, "no-such-flag") != 1 {
			t.Errorf("tswgate %s --no-such-flag: want exit 2, the error once and the usage on stderr: %v", strings.Join(args, " "), res)
		}
	}
}

// TestHelpDefaults: no help shows a default that is not one a user could
// give (a negative number standing for "not given").
func TestHelpDefaults(t *testing.T) {
	negative := regexp.MustCompile(`\(default -[0-9]`)
	for _, args := range helpAsks() {
		res := MustRun(t, nil, append(args, "-h")...)
		if negative.MatchString(res.stdout + res.stderr) {
			t.Errorf("tswgate %s -h shows a negative default:\n%s%s", strings.Join(args, " "), res.stdout, res.stderr)
		}
	}
}

// TestTyposSuggested: a mistyped command, subcommand or flag is a usage
// error that names the closest right one.
func TestTyposSuggested(t *testing.T) {
	env := []string{"TSWGATE_ADMIN_URL=" + MustDeadURL(t), "TSWGATE_ADMIN_KEY=" + testAdminKey}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"servee"}, `did you mean "serve"?`},
		{[]string{"tokn", "list"}, `did you mean "token"?`},
		{[]string{"quickstrat"}, `did you mean "quickstart"?`},
		{[]string{"token", "lst", "--project", "42"}, `did you mean "list"?`},
		{[]string{"token", "revok", "tsw_x"}, `did you mean "revoke"?`},
		{[]string{"policy", "shwo", "--project", "42"}, `did you mean "show"?`},
		{[]string{"webhook", "lst"}, `did you mean "list"?`},
		{[]string{"token", "create", "--projct", "42"}, `did you mean --project?`},
		{[]string{"audit", "--projet", "42"}, `did you mean --project?`},
		{[]string{"serve", "--confg", "x.json"}, `did you mean --config?`},
		{[]string{"webhook", "create", "--ulr", "https://x"}, `did you mean --url?`},
	} {
		res := MustRun(t, env, tc.args...)
		if res.code != 2 || !strings.Contains(res.stderr, tc.want) {
			t.Errorf("tswgate %s: want exit 2 and %q: %v", strings.Join(tc.args, " "), tc.want, res)
		}
	}
	if res := MustRun(t, env, "zzzzzz"); strings.Contains(res.stderr, "did you mean") {
		t.Errorf("tswgate zzzzzz suggests a command: %v", res)
	}
	if res := MustRun(t, env, "version", "--bogus"); res.code != 2 {
		t.Errorf("tswgate version --bogus: want exit 2: %v", res)
	}
}

// TestTokenIDArgument: a token command given something other than a
// whole token id refuses it before calling the admin API (so a secret
// pasted with the id is never sent), and says where the whole id is.
func TestTokenIDArgument(t *testing.T) {
	env := []string{"TSWGATE_ADMIN_URL=" + MustDeadURL(t), "TSWGATE_ADMIN_KEY=" + testAdminKey}
	id := "tsw_" + MustRandomBase62(t, 20)
	for _, tc := range []struct{ arg, want string }{
		{id[:8] + "…", "-o json"},
		{id + ":tswsk_" + MustRandomBase62(t, 40), "the id alone"},
		{"ci-deploy", "not a token id"},
	} {
		for _, args := range [][]string{{"show"}, {"revoke"}, {"deactivate"}, {"activate"}, {"rotate"},
			{"update", "--scopes", "compute.read"}, {"limit", "--rate", "1"}} {
			sub := args[0]
			res := MustRun(t, env, append([]string{"token", sub, tc.arg}, args[1:]...)...)
			if res.code != 2 || !strings.Contains(res.stderr, tc.want) || strings.Contains(res.stderr, "tswsk_") {
				t.Errorf("tswgate token %s %s: want exit 2 saying %q, the secret not repeated: %v", sub, tc.arg, tc.want, res)
			}
		}
	}
}

// TestBadFlagValueSaysWhatIsWanted: a flag value that does not parse is
// reported with what the flag wants.
func TestBadFlagValueSaysWhatIsWanted(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"token", "create", "--project", "ID", "--role", "owner", "--name", "x"}, "(--project: project id)"},
		{[]string{"audit", "--project", "forty-two"}, "(--project: project id"},
		{[]string{"webhook", "rotate", "ep_x", "--grace", "a day"}, "(--grace: how long"},
	} {
		res := MustRun(t, nil, tc.args...)
		if res.code != 2 || !strings.Contains(res.stderr, tc.want) {
			t.Errorf("tswgate %s: want exit 2 and %q: %v", strings.Join(tc.args, " "), tc.want, res)
		}
	}
}

// TestHelpCommand: "tswgate help COMMAND" is "tswgate COMMAND -h".
func TestHelpCommand(t *testing.T) {
	for _, args := range [][]string{{"serve"}, {"token", "create"}, {"token"}, {"policy", "set"}, {"webhook"}, {"audit"}} {
		got := MustRun(t, nil, append([]string{"help"}, args...)...)
		want := MustRun(t, nil, append(args, "-h")...)
		if got.code != 0 || got.stdout != want.stdout || got.stderr != "" {
			t.Errorf("tswgate help %s: want what -h prints:\n%s\ngot:\n%v", strings.Join(args, " "), want.stdout, got)
		}
	}
	if res := MustRun(t, nil, "help", "servee"); res.code != 2 || !strings.Contains(res.stderr, `did you mean "serve"?`) {
		t.Errorf("tswgate help servee: %v", res)
	}
}
