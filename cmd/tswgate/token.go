package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tswgate/tswgate/auth/tokenapi"
)

// tokenSubcommands lists the token subcommands, for messages.
const tokenSubcommands = "create, list, show, update, deactivate, activate, rotate, limit or revoke"

// tokenCommand runs "tswgate token ...".
func tokenCommand(ctx context.Context, args, environ []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{"token needs a subcommand: " + tokenSubcommands}
	}
	env := envMap(environ)
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("token "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	output := fs.String("o", "table", "output format: table or json")
	var (
		project   *int64
		role      *string
		name      *string
		expiresIn *string
		grace     *time.Duration
		rate      *float64
		burst     *int
		shadow    *bool
		status    *string
		limit     *int
		cursor    *string
		scopes    *string
		allowIPs  stringList
	)
	wantArgs := 1 // the token id
	switch sub {
	case "create":
		project = fs.Int64("project", 0, "project id")
		role = fs.String("role", "", "owner or accounting")
		name = fs.String("name", "", "display name")
		expiresIn = fs.String("expires-in", "", "lifetime, e.g. 720h (default: never expires)")
		rate = fs.Float64("rate", 0, "requests per second allowed to the token, overriding its role's limit (default: the role's)")
		burst = fs.Int("burst", 0, "requests allowed at once (default: ceil(rate))")
		scopes = fs.String("scopes", "", "permissions the token is limited to, e.g. compute.read,billing.read (default: its role's)")
		fs.Var(&allowIPs, "allow-ip", "client address range the token may be used from, e.g. 10.0.0.0/8; repeatable (default: any address)")
		wantArgs = 0
	case "update":
		scopes = fs.String("scopes", "", `new scopes list, e.g. compute.read,billing.read; "" removes it (the role decides)`)
		fs.Var(&allowIPs, "allow-ip", `client address range the token may be used from, e.g. 10.0.0.0/8; repeatable, replaces the token's ranges; "" removes them (any address)`)
	case "list":
		project = fs.Int64("project", 0, "project id")
		status = fs.String("status", "", "only tokens with this status: active or inactive")
		role = fs.String("role", "", "only tokens with this role: owner or accounting")
		limit = fs.Int("limit", 0, "show one page of at most this many tokens (default: every page)")
		cursor = fs.String("cursor", "", "start after the page that printed this cursor")
		wantArgs = 0
	case "rotate":
		grace = fs.Duration("grace", 0, "how long the old token keeps working, e.g. 1h (default: revoked at once)")
	case "limit":
		rate = fs.Float64("rate", 0, "requests per second allowed to the token, overriding its role's limit; 0 removes the override")
		burst = fs.Int("burst", 0, "requests allowed at once (default: ceil(rate))")
		shadow = fs.Bool("shadow", false, "true: report requests over the limit but do not refuse them (shadow mode); false: enforce the limit")
	case "show", "revoke", "deactivate", "activate":
	default:
		return usageError{fmt.Sprintf("unknown token subcommand %q: want %s", sub, tokenSubcommands)}
	}
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stdout, "Usage of tswgate token %s:\n", sub)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return nil
	}
	if err != nil {
		return usageError{fmt.Sprintf("token %s: %v", sub, err)}
	}
	if project != nil && *project <= 0 {
		return usageError{fmt.Sprintf("token %s: --project is required: the project id, a positive integer", sub)}
	}
	if limit != nil && (*limit < 0 || *limit > tokenapi.MaxPageSize) {
		return usageError{fmt.Sprintf("token list: --limit %d: want 1 to %d", *limit, tokenapi.MaxPageSize)}
	}
	if sub == "create" && (*role == "" || *name == "") {
		return usageError{"token create: --role (owner or accounting) and --name are required"}
	}
	if grace != nil && *grace < 0 {
		return usageError{fmt.Sprintf("token rotate: --grace %v: want 0 or more", *grace)}
	}
	var update tokenapi.UpdateRequest
	if sub == "update" {
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "scopes":
				list := splitList(*scopes)
				update.Scopes = &list
			case "allow-ip":
				list := splitList(allowIPs...)
				update.AllowedIPs = &list
			}
		})
		if update.Scopes == nil && update.AllowedIPs == nil {
			return usageError{"token update: --scopes or --allow-ip is required"}
		}
	}
	if sub == "limit" {
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "rate":
				// A new rate comes with its burst: --burst, else the default.
				update.RateLimit, update.Burst = rate, burst
			case "burst":
				update.Burst = burst
			case "shadow":
				update.RateShadow = shadow
			}
		})
		switch {
		case update.RateLimit == nil && update.RateShadow == nil:
			return usageError{"token limit: --rate (requests per second, or 0 to remove the token's own limit) or --shadow=true|false is required"}
		case update.RateLimit == nil && update.Burst != nil:
			return usageError{"token limit: --burst needs --rate"}
		case *rate < 0 || math.IsInf(*rate, 0) || math.IsNaN(*rate):
			return usageError{fmt.Sprintf("token limit: --rate %v: want requests per second, 0 or more", *rate)}
		case *burst < 0:
			return usageError{fmt.Sprintf("token limit: --burst %d: want 0 or more", *burst)}
		}
	}
	if *output != "table" && *output != "json" {
		return usageError{fmt.Sprintf("token %s: -o %q: want table or json", sub, *output)}
	}
	if len(pos) != wantArgs {
		return usageError{fmt.Sprintf("token %s takes %d argument(s), got %d", sub, wantArgs, len(pos))}
	}
	client, err := adminClient(env)
	if err != nil {
		return err
	}
	switch sub {
	case "create":
		tok, err := client.Create(ctx, tokenapi.CreateRequest{
			ProjectID: *project, Role: *role, Name: *name, ExpiresIn: *expiresIn, RateLimit: *rate, Burst: *burst,
			Scopes: splitList(*scopes), AllowedIPs: splitList(allowIPs...),
		})
		if err != nil {
			return fmt.Errorf("creating the token: %w", err)
		}
		if *output == "json" {
			return writeJSON(stdout, tok)
		}
		fmt.Fprintf(stdout, "Created %s token %q in project %d.\n\n  %s\n\n", tok.Role, tok.Name, tok.ProjectID, tok.Token)
		printCopyNow(stdout)
		return nil
	case "list":
		return listTokens(ctx, client, stdout, tokenapi.ListOptions{
			ProjectID: *project, Status: *status, Role: *role, Limit: *limit, Cursor: *cursor,
		}, *output)
	case "show":
		tok, err := client.Get(ctx, pos[0])
		if err != nil {
			return fmt.Errorf("showing the token: %w", err)
		}
		return showToken(stdout, tok, *output)
	case "update":
		tok, err := client.Update(ctx, pos[0], update)
		if err != nil {
			return fmt.Errorf("updating the token: %w", err)
		}
		if *output == "json" {
			return writeJSON(stdout, tok)
		}
		fmt.Fprintf(stdout, "Updated token %s (%q, project %d): the change applies from now on.\n", tok.ID, tok.Name, tok.ProjectID)
		return showToken(stdout, tok, *output)
	case "deactivate", "activate":
		status, doing := "inactive", "deactivating"
		if sub == "activate" {
			status, doing = "active", "activating"
		}
		tok, err := client.Update(ctx, pos[0], tokenapi.UpdateRequest{Status: &status})
		if err != nil {
			return fmt.Errorf("%s the token: %w", doing, err)
		}
		if *output == "json" {
			return writeJSON(stdout, tok)
		}
		if sub == "deactivate" {
			fmt.Fprintf(stdout, "Deactivated token %s (%q, project %d): it is refused (token_inactive) until it is activated again.\n",
				tok.ID, tok.Name, tok.ProjectID)
			return nil
		}
		fmt.Fprintf(stdout, "Activated token %s (%q, project %d): it works again.\n", tok.ID, tok.Name, tok.ProjectID)
		if tok.ExpiresAt != nil && !tok.ExpiresAt.After(time.Now()) {
			fmt.Fprintf(stdout, "It has expired, though (at %s): it is still refused.\n", tok.ExpiresAt.Local().Format(time.RFC3339))
		}
		return nil
	case "rotate":
		resp, err := client.Rotate(ctx, pos[0], tokenapi.RotateRequest{Grace: grace.String()})
		if err != nil {
			return fmt.Errorf("rotating the token: %w", err)
		}
		if *output == "json" {
			return writeJSON(stdout, rotation{Token: resp.Token, Previous: resp.Previous})
		}
		next, prev := resp.Token, resp.Previous
		fmt.Fprintf(stdout, "Rotated token %s (%q, project %d). The new %s token:\n\n  %s\n\n", prev.ID, prev.Name, prev.ProjectID, next.Role, next.Token)
		printCopyNow(stdout)
		switch {
		case prev.RevokedAt != nil:
			fmt.Fprintf(stdout, "\nThe old token %s is revoked: it is refused from now on.\n", prev.ID)
		case prev.ExpiresAt != nil && prev.ExpiresAt.After(time.Now()):
			fmt.Fprintf(stdout, "\nThe old token %s keeps working until %s (in %s): put the new one in place before then.\n",
				prev.ID, prev.ExpiresAt.Local().Format(time.RFC3339), time.Until(*prev.ExpiresAt).Round(time.Second))
		case prev.ExpiresAt != nil:
			fmt.Fprintf(stdout, "\nThe old token %s has expired (at %s).\n", prev.ID, prev.ExpiresAt.Local().Format(time.RFC3339))
		}
		return nil
	case "limit":
		tok, err := client.Update(ctx, pos[0], update)
		if err != nil {
			return fmt.Errorf("setting the token's rate limit: %w", err)
		}
		if *output == "json" {
			return writeJSON(stdout, tok)
		}
		switch {
		case update.RateLimit == nil:
		case tok.RateLimit > 0:
			fmt.Fprintf(stdout, "Token %s (%q, project %d) is limited to %s from now on.\n", tok.ID, tok.Name, tok.ProjectID, rateLimit(tok))
		default:
			fmt.Fprintf(stdout, "Token %s (%q, project %d) has no rate limit of its own any more: its role's applies (TSWGATE_RATE_%s).\n",
				tok.ID, tok.Name, tok.ProjectID, strings.ToUpper(tok.Role))
		}
		switch {
		case update.RateShadow == nil:
		case tok.RateShadow:
			fmt.Fprintf(stdout, "Token %s's rate limit is in shadow mode: requests over it are counted and logged, not refused.\n", tok.ID)
		default:
			fmt.Fprintf(stdout, "Token %s's rate limit is enforced (not in shadow mode).\n", tok.ID)
		}
		return nil
	default: // revoke
		tok, err := client.Revoke(ctx, pos[0])
		if err != nil {
			return fmt.Errorf("revoking the token: %w", err)
		}
		if *output == "json" {
			return writeJSON(stdout, tok)
		}
		fmt.Fprintf(stdout, "Revoked token %s (%q, project %d): it is refused from now on.\n", tok.ID, tok.Name, tok.ProjectID)
		return nil
	}
}

// rotation is "token rotate -o json": the new token (with its secret, so
// that jq -r .token gives the credential) and the old one under
// "previous".
type rotation struct {
	tokenapi.Token
	Previous tokenapi.Token `json:"previous"`
}

// printCopyNow tells to copy a secret just shown.
func printCopyNow(w io.Writer) {
	fmt.Fprintln(w, "Copy it now: its secret cannot be retrieved again. Use it as")
	fmt.Fprintln(w, "  Authorization: Bearer <token>")
}

// rateLimit describes a token's own rate limit.
func rateLimit(t tokenapi.Token) string {
	burst, note := t.Burst, ""
	if burst == 0 {
		burst, note = int(math.Ceil(t.RateLimit)), " (the default, ceil(rate))"
	}
	return fmt.Sprintf("%s requests per second, bursts of %d%s", strconv.FormatFloat(t.RateLimit, 'g', -1, 64), burst, note)
}

// listTokens prints the tokens o selects: every page, or with o.Limit one
// page and the cursor of the next.
func listTokens(ctx context.Context, client *tokenapi.Client, w io.Writer, o tokenapi.ListOptions, output string) error {
	var (
		toks []tokenapi.Token
		next string
		err  error
	)
	if o.Limit > 0 {
		var page tokenapi.ListResponse
		page, err = client.ListPage(ctx, o)
		toks, next = page.Tokens, page.NextCursor
	} else {
		toks, err = client.ListAll(ctx, o)
	}
	if err != nil {
		return fmt.Errorf("listing tokens: %w", err)
	}
	if output == "json" {
		if toks == nil {
			toks = []tokenapi.Token{}
		}
		return writeJSON(w, toks)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TOKEN ID\tDISPLAY NAME\tROLE\tSTATUS\tCREATED\tEXPIRES\tLAST USED\tREQUESTS 24H")
	for _, t := range toks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.DisplayID, t.Name, title(t.Role), title(t.Status),
			t.CreatedAt.Local().Format("2006-01-02 15:04"), expiry(t.ExpiresAt), lastUsed(t.LastUsed), usageSummary(t.Usage24h))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(toks) == 0 {
		fmt.Fprintf(w, "(no tokens in project %d)\n", o.ProjectID)
	}
	if next != "" {
		fmt.Fprintf(w, "(more: add --cursor %s)\n", next)
	}
	return nil
}

// lastUsed renders last_used for the list table ("-": not used yet, so
// that "never" there always means the expiry).
func lastUsed(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04")
}

// usageSummary renders usage_24h as "12 ok, 3 refused, 1 limited".
func usageSummary(u *tokenapi.Usage) string {
	if u == nil {
		return "-"
	}
	var refused int64
	for _, n := range u.Refused {
		refused += n
	}
	return fmt.Sprintf("%d ok, %d refused, %d limited", u.Allowed, refused, u.RateLimited)
}

func showToken(w io.Writer, t tokenapi.Token, output string) error {
	if output == "json" {
		return writeJSON(w, t)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Token ID:\t%s\n", t.ID)
	fmt.Fprintf(tw, "Display name:\t%s\n", t.Name)
	fmt.Fprintf(tw, "Project:\t%d\n", t.ProjectID)
	fmt.Fprintf(tw, "Role:\t%s\n", title(t.Role))
	fmt.Fprintf(tw, "Status:\t%s\n", title(t.Status))
	fmt.Fprintf(tw, "Created:\t%s\n", t.CreatedAt.Local().Format(time.RFC3339))
	fmt.Fprintf(tw, "Expires:\t%s\n", expiry(t.ExpiresAt))
	shadow := ""
	if t.RateShadow {
		shadow = ", in shadow mode (reported, not refused)"
	}
	if t.RateLimit > 0 {
		fmt.Fprintf(tw, "Rate limit:\t%s%s\n", rateLimit(t), shadow)
	} else {
		fmt.Fprintf(tw, "Rate limit:\tthe role's (TSWGATE_RATE_%s)%s\n", strings.ToUpper(t.Role), shadow)
	}
	if len(t.Scopes) > 0 {
		fmt.Fprintf(tw, "Scopes:\t%s\n", strings.Join(t.Scopes, ", "))
	} else {
		fmt.Fprintf(tw, "Scopes:\tthe role's (no scopes list)\n")
	}
	if len(t.AllowedIPs) > 0 {
		fmt.Fprintf(tw, "Allowed IPs:\t%s\n", strings.Join(t.AllowedIPs, ", "))
	} else {
		fmt.Fprintf(tw, "Allowed IPs:\tany address\n")
	}
	if t.RevokedAt != nil {
		fmt.Fprintf(tw, "Revoked:\t%s\n", t.RevokedAt.Local().Format(time.RFC3339))
	}
	if t.LastUsed != nil {
		fmt.Fprintf(tw, "Last used:\t%s\n", t.LastUsed.Local().Format(time.RFC3339))
	} else {
		fmt.Fprintf(tw, "Last used:\tnever\n")
	}
	fmt.Fprintf(tw, "Requests (24h):\t%s\n", usageSummary(t.Usage24h))
	if u := t.Usage24h; u != nil && len(u.Refused) > 0 {
		codes := make([]string, 0, len(u.Refused))
		for c := range u.Refused {
			codes = append(codes, c)
		}
		slices.Sort(codes)
		for _, c := range codes {
			fmt.Fprintf(tw, "  refused %s:\t%d\n", c, u.Refused[c])
		}
	}
	return tw.Flush()
}

func expiry(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.Local().Format("2006-01-02 15:04")
}

func title(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// parseInterspersed parses flags that may come before or after positional
// arguments ("revoke ID -o json").
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// adminClient finds the admin API and its key: TSWGATE_ADMIN_URL and
// TSWGATE_ADMIN_KEY, else the key file the embedded store made in the data
// dir.
func adminClient(env map[string]string) (*tokenapi.Client, error) {
	base := env["TSWGATE_ADMIN_URL"]
	if base == "" {
		base = "http://127.0.0.1:8081"
	}
	key := env["TSWGATE_ADMIN_KEY"]
	if key == "" {
		dir := env["TSWGATE_DATA_DIR"]
		if dir == "" {
			dir = "tswgate-data"
		}
		path := filepath.Join(dir, adminKeyFile)
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no admin key: set TSWGATE_ADMIN_KEY (or TSWGATE_DATA_DIR to the gateway's data dir; %s does not exist)", path)
		}
		if err != nil {
			return nil, fmt.Errorf("reading the admin key: %w", err)
		}
		key = strings.TrimSpace(string(b))
	}
	return &tokenapi.Client{BaseURL: base, AdminKey: key}, nil
}

func envMap(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// splitList splits comma-separated values into their non-empty items;
// an empty list for none (so that an update can remove a list).
func splitList(values ...string) []string {
	out := []string{}
	for _, v := range values {
		for item := range strings.SplitSeq(v, ",") {
			if item = strings.TrimSpace(item); item != "" {
				out = append(out, item)
			}
		}
	}
	return out
}
