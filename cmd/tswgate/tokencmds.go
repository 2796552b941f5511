package main

// The token subcommands: one function each, listed in commands.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/tokenapi"
)

// tokenFlags is the flag set of a token subcommand, with the -o flag they
// all have.
type tokenFlags struct {
	// name is the command's name in messages: "token create", "policy set".
	name   string
	fs     *flag.FlagSet
	output *string
}

func newTokenFlags(sub string) *tokenFlags { return newCommandFlags("token " + sub) }

// newCommandFlags makes the flag set of the command name, with -o.
func newCommandFlags(name string) *tokenFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &tokenFlags{name: name, fs: fs, output: fs.String("o", "table", "output format: table or json")}
}

// parse parses args, whose flags may follow the arguments. With -h it
// prints the flags to stdout and returns flag.ErrHelp (a success).
func (c *tokenFlags) parse(args []string, stdout io.Writer) ([]string, error) {
	return parseFlags(c.name, c.fs, args, stdout)
}

// parseFlags parses the flags of the command name (as in "token create"),
// which may follow its arguments, and returns the arguments. With -h or
// --help it prints the flags to stdout and returns flag.ErrHelp (a
// success); a bad flag is a usageError.
func parseFlags(name string, fs *flag.FlagSet, args []string, stdout io.Writer) ([]string, error) {
	fs.SetOutput(io.Discard)
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stdout, "Usage of tswgate %s:\n", name)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return nil, err
	}
	if err != nil {
		return nil, usageError{fmt.Sprintf("%s: %s", name, flagHint(fs, err))}
	}
	return pos, nil
}

// project checks --project.
func (c *tokenFlags) project(id int64) error {
	if id <= 0 {
		return usageError{fmt.Sprintf("%s: --project is required: the project id, a positive integer", c.name)}
	}
	return nil
}

// client checks -o and the number of arguments (want), and returns the
// admin API's client.
func (c *tokenFlags) client(pos []string, want int, environ []string) (*tokenapi.Client, error) {
	if *c.output != "table" && *c.output != "json" {
		return nil, usageError{fmt.Sprintf("%s: -o %q: want table or json", c.name, *c.output)}
	}
	if len(pos) != want {
		return nil, usageError{fmt.Sprintf("%s takes %d argument(s), got %d", c.name, want, len(pos))}
	}
	if want == 1 {
		if err := checkTokenID(c.name, pos[0]); err != nil {
			return nil, err
		}
	}
	return adminClient(envMap(environ))
}

// checkTokenID refuses an argument that is not a whole token id before it
// is sent anywhere, saying what to give instead: the id alone, never
// its secret; the whole id, not the shortened one of the list table.
func checkTokenID(cmd, arg string) error {
	switch id, _, hasSecret := strings.Cut(arg, ":"); {
	case auth.ValidID(arg):
		return nil
	case hasSecret:
		return usageError{fmt.Sprintf("%s: give the id alone (%q, before the \":\"), never the secret", cmd, id)}
	case strings.HasSuffix(arg, "…"):
		return usageError{fmt.Sprintf("%s: %q is the shortened id of the list table: give the whole id "+
			"(tsw_ and 20 letters and digits), shown by \"tswgate token list --project ID -o json\" and \"tswgate audit --project ID\"",
			cmd, arg)}
	default:
		return usageError{fmt.Sprintf("%s: %q is not a token id (tsw_ and 20 letters and digits)", cmd, arg)}
	}
}

func (c *tokenFlags) json() bool { return *c.output == "json" }

func tokenCreate(ctx context.Context, args, environ []string, stdout, _ io.Writer) error {
	c := newTokenFlags("create")
	project := c.fs.Int64("project", 0, "project id")
	role := c.fs.String("role", "", "owner or accounting")
	name := c.fs.String("name", "", "display name")
	expiresIn := c.fs.String("expires-in", "", "lifetime, e.g. 30d or 720h (default: never expires)")
	rate := c.fs.Float64("rate", 0, "requests per second allowed to the token, overriding its role's limit (default: the role's)")
	burst := c.fs.Int("burst", 0, "requests allowed at once (default: ceil(rate))")
	scopes := c.fs.String("scopes", "", "permissions the token is limited to, e.g. compute.read,billing.read; tokens.read,tokens.write\n"+
		"let it list and manage the project's tokens (default: its role's)")
	var allowIPs stringList
	c.fs.Var(&allowIPs, "allow-ip", "client address range the token may be used from, e.g. 10.0.0.0/8; repeatable (default: any address)")
	pos, err := c.parse(args, stdout)
	if err != nil {
		return err
	}
	if err := c.project(*project); err != nil {
		return err
	}
	if *role == "" || *name == "" {
		return usageError{"token create: --role (owner or accounting) and --name are required"}
	}
	client, err := c.client(pos, 0, environ)
	if err != nil {
		return err
	}
	tok, err := client.Create(ctx, tokenapi.CreateRequest{
		ProjectID: *project, Role: *role, Name: *name, ExpiresIn: *expiresIn, RateLimit: *rate, Burst: *burst,
		Scopes: splitList(*scopes), AllowedIPs: splitList(allowIPs...),
	})
	if err != nil {
		return fmt.Errorf("creating the token: %w", err)
	}
	if c.json() {
		return writeJSON(stdout, tok)
	}
	fmt.Fprintf(stdout, "Created %s token %q in project %d.\n\n  %s\n\n", tok.Role, tok.Name, tok.ProjectID, tok.Token)
	printCopyNow(stdout)
	return nil
}

func tokenList(ctx context.Context, args, environ []string, stdout, _ io.Writer) error {
	c := newTokenFlags("list")
	project := c.fs.Int64("project", 0, "project id")
	status := c.fs.String("status", "", "only tokens with this status: active or inactive")
	role := c.fs.String("role", "", "only tokens with this role: owner or accounting")
	limit := c.fs.Int("limit", 0, "show one page of at most this many tokens (default: every page)")
	cursor := c.fs.String("cursor", "", "start after the page that printed this cursor")
	pos, err := c.parse(args, stdout)
	if err != nil {
		return err
	}
	if err := c.project(*project); err != nil {
		return err
	}
	if *limit < 0 || *limit > tokenapi.MaxPageSize {
		return usageError{fmt.Sprintf("token list: --limit %d: want 1 to %d", *limit, tokenapi.MaxPageSize)}
	}
	client, err := c.client(pos, 0, environ)
	if err != nil {
		return err
	}
	return listTokens(ctx, client, stdout, tokenapi.ListOptions{
		ProjectID: *project, Status: *status, Role: *role, Limit: *limit, Cursor: *cursor,
	}, *c.output)
}

func tokenShow(ctx context.Context, args, environ []string, stdout, _ io.Writer) error {
	c := newTokenFlags("show")
	pos, err := c.parse(args, stdout)
	if err != nil {
		return err
	}
	client, err := c.client(pos, 1, environ)
	if err != nil {
		return err
	}
	tok, err := client.Get(ctx, pos[0])
	if err != nil {
		return fmt.Errorf("showing the token: %w", err)
	}
	return showToken(stdout, tok, *c.output)
}

func tokenUpdate(ctx context.Context, args, environ []string, stdout, _ io.Writer) error {
	c := newTokenFlags("update")
	scopes := c.fs.String("scopes", "", `new scopes list, e.g. compute.read,billing.read (tokens.read,tokens.write: manage tokens); "" removes it (the role decides)`)
	var allowIPs stringList
	c.fs.Var(&allowIPs, "allow-ip", `client address range the token may be used from, e.g. 10.0.0.0/8; repeatable, replaces the token's ranges; "" removes them (any address)`)
	pos, err := c.parse(args, stdout)
	if err != nil {
		return err
	}
	var update tokenapi.UpdateRequest
	c.fs.Visit(func(f *flag.Flag) {
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
	client, err := c.client(pos, 1, environ)
	if err != nil {
		return err
	}
	tok, err := client.Update(ctx, pos[0], update)
	if err != nil {
		return fmt.Errorf("updating the token: %w", err)
	}
	if c.json() {
		return writeJSON(stdout, tok)
	}
	fmt.Fprintf(stdout, "Updated token %s (%q, project %d): the change applies from now on.\n", tok.ID, tok.Name, tok.ProjectID)
	return showToken(stdout, tok, *c.output)
}

func tokenDeactivate(ctx context.Context, args, environ []string, stdout, _ io.Writer) error {
	tok, err := setStatus(ctx, newTokenFlags("deactivate"), "inactive", "deactivating", nil, args, environ, stdout)
	if err != nil || tok == nil {
		return err
	}
	fmt.Fprintf(stdout, "Deactivated token %s (%q, project %d): it is refused (token_inactive) until it is activated again.\n",
		tok.ID, tok.Name, tok.ProjectID)
	return nil
}

func tokenActivate(ctx context.Context, args, environ []string, stdout, _ io.Writer) error {
	c := newTokenFlags("activate")
	expiresIn := c.fs.String("expires-in", "", "also give the token a new lifetime from now, e.g. 30d or 720h (a project's lifetime policy may ask for one)")
	edit := func(req *tokenapi.UpdateRequest) {
		if *expiresIn != "" {
			req.ExpiresIn = expiresIn
		}
	}
	tok, err := setStatus(ctx, c, "active", "activating", edit, args, environ, stdout)
	if err != nil || tok == nil {
		return err
	}
	fmt.Fprintf(stdout, "Activated token %s (%q, project %d): it works again.\n", tok.ID, tok.Name, tok.ProjectID)
	if tok.ExpiresAt != nil && !tok.ExpiresAt.After(time.Now()) {
		fmt.Fprintf(stdout, "It has expired, though (at %s): it is still refused.\n", tok.ExpiresAt.Local().Format(time.RFC3339))
	}
	return nil
}

// setStatus runs "token activate" or "token deactivate" (flags c) up to
// the message, edit (if any) adding to the update: it returns the token as
// changed, or nil when it printed it as JSON.
func setStatus(ctx context.Context, c *tokenFlags, status, doing string, edit func(*tokenapi.UpdateRequest),
	args, environ []string, stdout io.Writer) (*tokenapi.Token, error) {
	pos, err := c.parse(args, stdout)
	if err != nil {
		return nil, err
	}
	client, err := c.client(pos, 1, environ)
	if err != nil {
		return nil, err
	}
	req := tokenapi.UpdateRequest{Status: &status}
	if edit != nil {
		edit(&req)
	}
	tok, err := client.Update(ctx, pos[0], req)
	if err != nil {
		return nil, fmt.Errorf("%s the token: %w", doing, err)
	}
	if c.json() {
		return nil, writeJSON(stdout, tok)
	}
	return &tok, nil
}

func tokenRotate(ctx context.Context, args, environ []string, stdout, _ io.Writer) error {
	c := newTokenFlags("rotate")
	grace := c.fs.Duration("grace", 0, "how long the old token keeps working, e.g. 1h (default: revoked at once)")
	expiresIn := c.fs.String("expires-in", "", "the new token's lifetime, e.g. 30d or 720h (default: the old token's)")
	pos, err := c.parse(args, stdout)
	if err != nil {
		return err
	}
	if *grace < 0 {
		return usageError{fmt.Sprintf("token rotate: --grace %v: want 0 or more", *grace)}
	}
	client, err := c.client(pos, 1, environ)
	if err != nil {
		return err
	}
	req := tokenapi.RotateRequest{Grace: grace.String()}
	if *expiresIn != "" {
		req.ExpiresIn = *expiresIn
	}
	resp, err := client.Rotate(ctx, pos[0], req)
	if err != nil {
		return fmt.Errorf("rotating the token: %w", err)
	}
	if c.json() {
		return writeJSON(stdout, rotation{Token: resp.Token, Previous: resp.Previous})
	}
	printRotation(stdout, resp)
	return nil
}

// printRotation writes the answer to a rotation for a person: the new
// token's secret, then what became of the old one, and the server's own
// words when it could not say (the old token's end not confirmed).
func printRotation(stdout io.Writer, resp tokenapi.RotateResponse) {
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
	if resp.Warning != "" {
		fmt.Fprintf(stdout, "\nWarning: %s\n", cell(resp.Warning))
	}
	if next.Status != "active" {
		fmt.Fprintf(stdout, "\nThe new token %s is %s, like the old one: it is refused until `tswgate token activate %s`.\n", next.ID, next.Status, next.ID)
	}
}

func tokenLimit(ctx context.Context, args, environ []string, stdout, _ io.Writer) error {
	c := newTokenFlags("limit")
	rate := c.fs.Float64("rate", 0, "requests per second allowed to the token, overriding its role's limit; 0 removes the override")
	burst := c.fs.Int("burst", 0, "requests allowed at once (default: ceil(rate))")
	shadow := c.fs.Bool("shadow", false, "true: report requests over the limit but do not refuse them (shadow mode); false: enforce the limit")
	pos, err := c.parse(args, stdout)
	if err != nil {
		return err
	}
	update, err := limitUpdate(c.fs, rate, burst, shadow)
	if err != nil {
		return err
	}
	client, err := c.client(pos, 1, environ)
	if err != nil {
		return err
	}
	tok, err := client.Update(ctx, pos[0], update)
	if err != nil {
		return fmt.Errorf("setting the token's rate limit: %w", err)
	}
	if c.json() {
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
}

// limitUpdate is the change "token limit" asks for with the flags it was
// given.
func limitUpdate(fs *flag.FlagSet, rate *float64, burst *int, shadow *bool) (tokenapi.UpdateRequest, error) {
	var update tokenapi.UpdateRequest
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
		return update, usageError{"token limit: --rate (requests per second, or 0 to remove the token's own limit) or --shadow=true|false is required"}
	case update.RateLimit == nil && update.Burst != nil:
		return update, usageError{"token limit: --burst needs --rate"}
	case *rate < 0 || math.IsInf(*rate, 0) || math.IsNaN(*rate):
		return update, usageError{fmt.Sprintf("token limit: --rate %v: want requests per second, 0 or more", *rate)}
	case *burst < 0:
		return update, usageError{fmt.Sprintf("token limit: --burst %d: want 0 or more", *burst)}
	}
	return update, nil
}

func tokenRevoke(ctx context.Context, args, environ []string, stdout, _ io.Writer) error {
	c := newTokenFlags("revoke")
	pos, err := c.parse(args, stdout)
	if err != nil {
		return err
	}
	client, err := c.client(pos, 1, environ)
	if err != nil {
		return err
	}
	tok, err := client.Revoke(ctx, pos[0])
	if err != nil {
		return fmt.Errorf("revoking the token: %w", err)
	}
	if c.json() {
		return writeJSON(stdout, tok)
	}
	fmt.Fprintf(stdout, "Revoked token %s (%q, project %d): it is refused from now on.\n", tok.ID, tok.Name, tok.ProjectID)
	return nil
}
