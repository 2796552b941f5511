package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
)

// command is one of the CLI's subcommands.
type command struct {
	// name is what follows "tswgate": "serve", "token create", ….
	name string
	// args are its arguments and flags, as shown in the usage; a "\n"
	// continues them on the next line.
	args string
	// about says what it does, when its name and args do not; a "\n"
	// continues it on the next line.
	about string
	run   func(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error
}

// commands lists the CLI's subcommands, in the order of the usage: run
// dispatches on it, the usage is made from it, and a test checks that
// docs/token-api.md shows the same usage.
var commands = []command{
	{"serve", "[--config FILE] [--check]", "run the gateway (settings: TSWGATE_* variables,\ndocs/configuration.md)", serve},
	{"quickstart", "[--tls]", "run it in front of a stand-in API, with two tokens to try", quickstart},
	{"token create", "--project ID --role owner|accounting --name NAME [--expires-in 720h]\n[--rate R [--burst B]] [--scopes P,...] [--allow-ip CIDR]... [-o json]", "", tokenCreate},
	{"token list", "--project ID [--status active|inactive] [--role owner|accounting]\n[--limit N [--cursor C]] [-o json]",
		"every page, or one page of N with --limit", tokenList},
	{"token show", "ID [-o json]", "", tokenShow},
	{"token update", "ID [--scopes P,...] [--allow-ip CIDR]... [-o json]",
		"replace the token's scopes or address ranges\n(\"\" removes a list)", tokenUpdate},
	{"token deactivate", "ID [-o json]", "refuse the token (token_inactive) until activated", tokenDeactivate},
	{"token activate", "ID [--expires-in 720h] [-o json]",
		"serve the token again; --expires-in also gives it\na new lifetime (a lifetime policy may ask for one)", tokenActivate},
	{"token rotate", "ID [--grace 1h] [--expires-in 720h] [-o json]",
		"a new token like the old; the old one works for\n--grace (default 0: revoked at once)", tokenRotate},
	{"token limit", "ID --rate R [--burst B] [--shadow=true|false] [-o json]",
		"the token's own rate limit (requests/s); --rate 0\nremoves it (the role's applies)", tokenLimit},
	{"token revoke", "ID [-o json]", "", tokenRevoke},
	{"policy", "show|set|clear|violations --project ID [-o json]\n[--max-lifetime 90d] [--require-expiry] [--rate R [--burst B]]",
		"a project's token lifetime policy and shared\nrate limit (set replaces it whole); violations\nlists live tokens that break it", policyCommand},
	{"audit", "--project ID [--limit 50] [--cursor C] [-o json]", "the project's audit trail, newest first", auditCommand},
	{"webhook", "list|create|delete|rotate|deliveries|replay|test ...", "webhook endpoints and deliveries (tswgate webhook -h)",
		func(ctx context.Context, args, environ []string, stdout, _ io.Writer) error {
			return webhookCommand(ctx, args, environ, stdout)
		}},
	{"version", "", "", versionCommand},
}

// lookup finds the command args start with, and returns the arguments
// after its name.
func lookup(args []string) (*command, []string, error) {
	name := args[0]
	if name == "--version" {
		name = "version"
	}
	if name == "token" {
		if len(args) < 2 {
			return nil, nil, usageError{"token needs a subcommand: " + tokenSubcommands()}
		}
		for i := range commands {
			if commands[i].name == "token "+args[1] {
				return &commands[i], args[2:], nil
			}
		}
		return nil, nil, usageError{fmt.Sprintf("unknown token subcommand %q%s: want %s",
			args[1], didYouMean(args[1], listWords(tokenSubcommands())), tokenSubcommands())}
	}
	for i := range commands {
		if commands[i].name == name {
			return &commands[i], args[1:], nil
		}
	}
	return nil, nil, nil
}

// commandNames are the words that may follow "tswgate": each command's
// first, and help.
func commandNames() []string {
	names := []string{"help"}
	for _, c := range commands {
		if first, _, _ := strings.Cut(c.name, " "); !slices.Contains(names, first) {
			names = append(names, first)
		}
	}
	return names
}

// tokenSubcommands lists the token subcommands, for messages: "create,
// list, … or revoke".
func tokenSubcommands() string {
	var subs []string
	for _, c := range commands {
		if sub, ok := strings.CutPrefix(c.name, "token "); ok {
			subs = append(subs, sub)
		}
	}
	return strings.Join(subs[:len(subs)-1], ", ") + " or " + subs[len(subs)-1]
}

// tokenUsage is the token subcommands' lines of the usage.
func tokenUsage() string {
	var b strings.Builder
	for _, c := range commands {
		if strings.HasPrefix(c.name, "token ") {
			b.WriteString(commandUsage(c))
		}
	}
	return b.String()
}

// Columns of the usage: where continued arguments and the descriptions
// start.
const (
	argsIndent  = 20
	aboutIndent = 43
)

// commandsUsage is the list of commands in the usage.
func commandsUsage() string {
	var b strings.Builder
	for _, c := range commands {
		b.WriteString(commandUsage(c))
	}
	return b.String()
}

// commandUsage is c's lines in the usage.
func commandUsage(c command) string {
	args := strings.Split(c.args, "\n")
	line := "  tswgate " + c.name
	if args[0] != "" {
		line += " " + args[0]
	}
	lines := []string{line}
	for _, a := range args[1:] {
		lines = append(lines, strings.Repeat(" ", argsIndent)+a)
	}
	for i, a := range strings.Split(c.about, "\n") {
		switch last := &lines[len(lines)-1]; {
		case a == "":
		case i == 0 && len(*last) <= aboutIndent-2:
			*last += strings.Repeat(" ", aboutIndent-len(*last)) + a
		default:
			lines = append(lines, strings.Repeat(" ", aboutIndent)+a)
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

// usage is the CLI's help.
func usage() string {
	return `tswgate: the authenticating gateway for the TeraSwitch API.

Usage:
` + commandsUsage() + `
"tswgate help COMMAND" (or "tswgate COMMAND -h") shows a command's flags.

The token, policy, audit and webhook commands call the admin API at
TSWGATE_ADMIN_URL (default http://` + defaultAdminAddr + `) with TSWGATE_ADMIN_KEY (default:
the key file in TSWGATE_DATA_DIR, which the embedded store creates on first start).
`
}

func versionCommand(_ context.Context, args, _ []string, stdout, _ io.Writer) error {
	if len(args) == 1 && isHelpArg(args[0]) {
		return errCommandHelp
	}
	if len(args) > 0 {
		return usageError{"version takes no arguments, got " + strings.Join(args, " ")}
	}
	fmt.Fprintln(stdout, "tswgate", version())
	return nil
}
