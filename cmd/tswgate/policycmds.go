package main

// The policy command: a project's token lifetime policy and shared rate
// limit, through the admin API.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/tswgate/tswgate/auth/tokenapi"
)

// policyCommand runs "tswgate policy show|set|clear|violations".
func policyCommand(ctx context.Context, args, environ []string, stdout, _ io.Writer) error {
	if len(args) == 0 {
		return usageError{"policy needs a subcommand: " + policySubcommands}
	}
	sub := args[0]
	switch {
	case isHelpArg(sub):
		return errCommandHelp
	case sub != "show" && sub != "set" && sub != "clear" && sub != "violations":
		return usageError{fmt.Sprintf("unknown policy subcommand %q%s: want %s", sub, didYouMean(sub, listWords(policySubcommands)), policySubcommands)}
	}
	c := newCommandFlags("policy " + sub)
	project := c.fs.Int64("project", 0, "project id")
	var req tokenapi.PolicyRequest
	if sub == "set" {
		c.fs.StringVar(&req.MaxLifetime, "max-lifetime", "", "longest token lifetime, e.g. 90d or 720h (default: no bound)")
		c.fs.BoolVar(&req.RequireExpiry, "require-expiry", false, "refuse tokens without an expiry")
		c.fs.Float64Var(&req.RateLimit, "rate", 0, "requests/s shared by all the project's tokens (default: none)")
		c.fs.IntVar(&req.Burst, "burst", 0, "burst of --rate (default: ceil(rate))")
	}
	pos, err := c.parse(args[1:], stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := c.project(*project); err != nil {
		return err
	}
	client, err := c.client(pos, 0, environ)
	if err != nil {
		return err
	}
	switch sub {
	case "show":
		pol, err := client.Policy(ctx, *project)
		if err != nil {
			return fmt.Errorf("reading the policy: %w", err)
		}
		return printPolicy(stdout, c.json(), "", pol)
	case "set", "clear":
		var resp tokenapi.PolicyResponse
		doing := "setting the policy"
		if sub == "clear" {
			resp, err = client.ClearPolicy(ctx, *project)
			doing = "clearing the policy"
		} else {
			resp, err = client.SetPolicy(ctx, *project, req)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", doing, err)
		}
		return printPolicy(stdout, c.json(), resp.Message, resp.Policy)
	case "violations":
		resp, err := client.Violations(ctx, *project)
		if err != nil {
			return fmt.Errorf("listing violations: %w", err)
		}
		return printViolations(stdout, c.json(), resp)
	}
	panic("policy: unhandled subcommand " + sub) // checked above
}

// policySubcommands lists the policy subcommands, for messages.
const policySubcommands = "show, set, clear or violations"

func printPolicy(w io.Writer, asJSON bool, msg string, p tokenapi.Policy) error {
	if asJSON {
		return writeJSON(w, p)
	}
	if msg != "" {
		fmt.Fprintln(w, msg)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "project\t%d\n", p.ProjectID)
	fmt.Fprintf(tw, "max lifetime\t%s\n", orDash(p.MaxLifetime))
	fmt.Fprintf(tw, "require expiry\t%t\n", p.RequireExpiry)
	limit := "-"
	if p.RateLimit > 0 {
		limit = fmt.Sprintf("%g/s (burst %d)", p.RateLimit, p.Burst)
	}
	fmt.Fprintf(tw, "project rate limit\t%s\n", limit)
	updated := "-"
	if p.UpdatedAt != nil {
		updated = p.UpdatedAt.Local().Format(time.RFC3339)
	}
	fmt.Fprintf(tw, "updated\t%s\n", updated)
	return tw.Flush()
}

func printViolations(w io.Writer, asJSON bool, resp tokenapi.ViolationsResponse) error {
	if asJSON {
		return writeJSON(w, resp.Violations)
	}
	fmt.Fprintln(w, resp.Message)
	if len(resp.Violations) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tCREATED\tEXPIRES\tREASON")
	for _, v := range resp.Violations {
		expires := "never"
		if v.Token.ExpiresAt != nil {
			expires = v.Token.ExpiresAt.Local().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.Token.ID, cell(v.Token.Name),
			v.Token.CreatedAt.Local().Format(time.RFC3339), expires, v.Reason)
	}
	return tw.Flush()
}
