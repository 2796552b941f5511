package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/tokenapi"
)

// auditCommand runs "tswgate audit --project N": a page of the project's
// audit trail, newest first.
func auditCommand(ctx context.Context, args, environ []string, stdout, _ io.Writer) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	output := fs.String("o", "table", "output format: table or json")
	project := fs.Int64("project", 0, "project id, required (0: refused admin-key attempts that named no project)")
	limit := fs.Int("limit", 50, "most events shown")
	cursor := fs.String("cursor", "", "continue after the page that printed this cursor")
	pos, err := parseFlags("audit", fs, args, stdout)
	if err != nil {
		return err
	}
	switch {
	case !given(fs, "project") || *project < 0:
		return usageError{"audit: --project is required: the project id, a positive integer (or 0 for refused admin-key attempts that named no project)"}
	case *limit < 1 || *limit > tokenapi.MaxPageSize:
		return usageError{fmt.Sprintf("audit: --limit %d: want 1 to %d", *limit, tokenapi.MaxPageSize)}
	case *output != "table" && *output != "json":
		return usageError{fmt.Sprintf("audit: -o %q: want table or json", *output)}
	case len(pos) != 0:
		return usageError{fmt.Sprintf("audit takes no arguments, got %d", len(pos))}
	}
	client, err := adminClient(envMap(environ))
	if err != nil {
		return err
	}
	page, err := client.Audit(ctx, tokenapi.AuditOptions{ProjectID: *project, Limit: *limit, Cursor: *cursor})
	if err != nil {
		return fmt.Errorf("reading the audit trail: %w", err)
	}
	if *output == "json" {
		return writeJSON(stdout, auditPage{Events: page.Events, NextCursor: page.NextCursor})
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tACTION\tOUTCOME\tACTOR\tTOKEN ID\tSOURCE\tDETAIL")
	for _, ev := range page.Events {
		outcome := ev.Outcome
		if ev.Reason != "" {
			outcome += " (" + ev.Reason + ")"
		}
		actor := ev.ActorKind
		if ev.Actor != "" {
			actor += " " + ev.Actor
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ev.Time.Local().Format("2006-01-02 15:04:05"), ev.Action, cell(outcome),
			cell(actor), orDash(ev.TokenID), cell(orDash(ev.Source)), cell(ev.Detail))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(page.Events) == 0 {
		fmt.Fprintf(stdout, "(no audit events in project %d)\n", *project)
	}
	if page.NextCursor != "" {
		fmt.Fprintf(stdout, "(more: add --cursor %s)\n", page.NextCursor)
	}
	return nil
}

// given reports whether the flag name was set on the command line.
func given(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}

// auditPage is "audit -o json".
type auditPage struct {
	Events     []auth.AuditEvent `json:"events"`
	NextCursor string            `json:"next_cursor,omitempty"`
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
