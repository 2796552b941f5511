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
	"unicode"

	"github.com/tswgate/tswgate/auth/tokenapi"
	"github.com/tswgate/tswgate/internal/gateway"
)

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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.DisplayID, cell(t.Name), title(t.Role), title(t.Status),
			t.CreatedAt.Local().Format("2006-01-02 15:04"), expiry(t.ExpiresAt), lastUsed(t.LastUsed), usageSummary(t.Usage24h))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(toks) == 0 {
		fmt.Fprintf(w, "(no %s in project %d)\n", strings.Join(append(strings.Fields(o.Status+" "+o.Role), "tokens"), " "), o.ProjectID)
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
	fmt.Fprintf(tw, "Display name:\t%s\n", cell(t.Name))
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

// cell returns s to print in a terminal: as it is when every character
// is printable, else quoted with Go's escapes, so that text from the API
// (a token's name, an audit detail) can never move the cursor, clear the
// screen or reorder what is shown.
func cell(s string) string {
	for _, r := range s {
		if r == '\t' || !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
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

// defaultAdminAddr is where the CLI looks for the admin API when
// TSWGATE_ADMIN_URL is unset.
const defaultAdminAddr = "127.0.0.1:8081"

// adminClient finds the admin API and its key: TSWGATE_ADMIN_URL and
// TSWGATE_ADMIN_KEY, else the key file the embedded store made in the data
// dir.
func adminClient(env map[string]string) (*tokenapi.Client, error) {
	base := adminURL(env)
	key := env["TSWGATE_ADMIN_KEY"]
	if key == "" {
		path := adminKeyPath(env)
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

// adminURL is the admin API's URL the CLI calls.
func adminURL(env map[string]string) string {
	if u := env["TSWGATE_ADMIN_URL"]; u != "" {
		return u
	}
	return "http://" + defaultAdminAddr
}

// adminKeyPath is the key file the CLI reads when TSWGATE_ADMIN_KEY is
// unset.
func adminKeyPath(env map[string]string) string {
	dir := env["TSWGATE_DATA_DIR"]
	if dir == "" {
		dir = "tswgate-data"
	}
	return filepath.Join(dir, gateway.AdminKeyFile)
}

// adminKeyHint adds to an error of an admin key the admin API refused
// where the key came from, and what to give instead; other errors it
// returns as they are.
func adminKeyHint(err error, environ []string) error {
	var apiErr *tokenapi.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != "invalid_admin_key" {
		return err
	}
	env := envMap(environ)
	src := "TSWGATE_ADMIN_KEY"
	if env[src] == "" {
		src = adminKeyPath(env)
	}
	return fmt.Errorf("%w\n  the key came from %s: give the admin key of the gateway at %s "+
		"(in TSWGATE_ADMIN_KEY, or TSWGATE_DATA_DIR naming the gateway's data dir)", err, src, adminURL(env))
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
