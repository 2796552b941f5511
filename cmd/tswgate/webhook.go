package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tswgate/tswgate/auth/tokenapi"
	"github.com/tswgate/tswgate/webhook/webhookapi"
)

const webhookSubcommands = "list, create, delete, rotate, deliveries, replay or test"

// webhookUsage is the help of "tswgate webhook".
const webhookUsage = `Usage:
  tswgate webhook list [--project ID] [-o json]
  tswgate webhook create --url URL [--project ID] [--types T1,T2] [--description D] [-o json]
                                           the secret is shown once
  tswgate webhook delete ENDPOINT [--project ID]
  tswgate webhook rotate ENDPOINT [--grace 24h] [--project ID] [-o json]
                                           a new secret; the old one signs too for --grace
  tswgate webhook deliveries ENDPOINT [DELIVERY] [--limit 50] [--project ID] [-o json]
                                           latest deliveries, or one with its attempts
  tswgate webhook replay ENDPOINT DELIVERY [--project ID]
  tswgate webhook test ENDPOINT [--project ID]
                                           send a webhook.test message

--project 0 (the default) manages the operator's endpoints, which receive every
project's events. Calls go to the admin API as for "tswgate token".
`

// webhookFlags are the flags of a webhook subcommand.
type webhookFlags struct {
	output, url, types, description string
	project                         int64
	limit                           int
	grace                           time.Duration
}

// webhookCommand runs "tswgate webhook <subcommand>".
func webhookCommand(ctx context.Context, args, environ []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{"webhook needs a subcommand: " + webhookSubcommands}
	}
	sub, args := args[0], args[1:]
	if sub == "-h" || sub == "--help" || sub == "help" {
		fmt.Fprint(stdout, webhookUsage)
		return nil
	}
	fs := flag.NewFlagSet("webhook "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var f webhookFlags
	fs.StringVar(&f.output, "o", "table", "output format: table or json")
	fs.Int64Var(&f.project, "project", 0, "project id (0: the operator's endpoints)")
	wantArgs := map[string][2]int{"list": {0, 0}, "create": {0, 0}, "delete": {1, 1}, "rotate": {1, 1},
		"deliveries": {1, 2}, "replay": {2, 2}, "test": {1, 1}}
	switch sub {
	case "create":
		fs.StringVar(&f.url, "url", "", "where messages are posted (https)")
		fs.StringVar(&f.types, "types", "", "comma-separated event types to send (default: all)")
		fs.StringVar(&f.description, "description", "", "a note for humans")
	case "rotate":
		fs.DurationVar(&f.grace, "grace", 24*time.Hour, "how long the old secret keeps signing beside the new one")
	case "deliveries":
		fs.IntVar(&f.limit, "limit", 50, "most deliveries shown")
	}
	want, ok := wantArgs[sub]
	if !ok {
		return usageError{fmt.Sprintf("unknown webhook subcommand %q%s: want %s", sub, didYouMean(sub, listWords(webhookSubcommands)), webhookSubcommands)}
	}
	pos, err := parseInterspersed(fs, args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, webhookUsage)
		return nil
	case err != nil:
		return usageError{fmt.Sprintf("webhook %s: %s", sub, flagHint(fs, err))}
	case len(pos) < want[0] || len(pos) > want[1]:
		return usageError{fmt.Sprintf("webhook %s: got %d arguments, want %d to %d (see tswgate webhook -h)", sub, len(pos), want[0], want[1])}
	case f.project < 0:
		return usageError{"webhook: --project: a project id, or 0 for the operator's endpoints"}
	case f.output != "table" && f.output != "json":
		return usageError{fmt.Sprintf("webhook: -o %q: want table or json", f.output)}
	case sub == "create" && f.url == "":
		return usageError{"webhook create: --url is required"}
	case f.limit < 0 || f.limit > webhookapi.MaxPageSize:
		return usageError{fmt.Sprintf("webhook deliveries: --limit %d: want 1 to %d", f.limit, webhookapi.MaxPageSize)}
	}
	api, err := adminClient(envMap(environ))
	if err != nil {
		return err
	}
	c := &webhookapi.Client{API: api, ProjectID: f.project}
	return endpointHint(runWebhook(ctx, c, sub, pos, &f, stdout), f.project)
}

// endpointHint adds to an error of an endpoint not found that endpoints
// are looked for among the project's of --project (the operator's
// without it), and how to list them.
func endpointHint(err error, project int64) error {
	var apiErr *tokenapi.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != "endpoint_not_found" {
		return err
	}
	if project == 0 {
		return fmt.Errorf("%w\n  without --project only the operator's endpoints are looked for: "+
			"a project's endpoint needs --project ID (tswgate webhook list --project ID lists them)", err)
	}
	return fmt.Errorf("%w\n  tswgate webhook list --project %d lists project %d's endpoints", err, project, project)
}

// runWebhook calls the API for sub and prints the answer.
func runWebhook(ctx context.Context, c *webhookapi.Client, sub string, pos []string, f *webhookFlags, w io.Writer) error {
	switch sub {
	case "list":
		es, err := c.List(ctx)
		if err != nil {
			return fmt.Errorf("listing webhook endpoints: %w", err)
		}
		return printEndpoints(w, es, f.output)
	case "create":
		req := webhookapi.CreateRequest{URL: f.url, Description: f.description}
		if f.types != "" {
			req.Types = strings.Split(f.types, ",")
		}
		e, err := c.Create(ctx, req)
		if err != nil {
			return fmt.Errorf("creating a webhook endpoint: %w", err)
		}
		return printSecret(w, e, f.output)
	case "rotate":
		resp, err := c.RotateSecret(ctx, pos[0], webhookapi.RotateRequest{Grace: f.grace.String()})
		if err != nil {
			return fmt.Errorf("rotating the secret: %w", err)
		}
		return printSecret(w, resp.Endpoint, f.output)
	case "delete":
		if _, err := c.Delete(ctx, pos[0]); err != nil {
			return fmt.Errorf("deleting the webhook endpoint: %w", err)
		}
		fmt.Fprintf(w, "Webhook endpoint %s deleted.\n", pos[0])
		return nil
	case "deliveries":
		if len(pos) == 2 {
			d, err := c.Delivery(ctx, pos[0], pos[1])
			if err != nil {
				return fmt.Errorf("reading the delivery: %w", err)
			}
			return printDelivery(w, d, f.output)
		}
		ds, err := c.Deliveries(ctx, pos[0], f.limit)
		if err != nil {
			return fmt.Errorf("listing deliveries: %w", err)
		}
		return printDeliveries(w, ds, f.output)
	case "replay":
		d, err := c.Replay(ctx, pos[0], pos[1])
		if err != nil {
			return fmt.Errorf("replaying the delivery: %w", err)
		}
		fmt.Fprintf(w, "Delivery %s queued again (webhook-id %s).\n", d.ID, d.EventID)
		return nil
	default: // test
		d, err := c.Test(ctx, pos[0])
		if err != nil {
			return fmt.Errorf("sending a test message: %w", err)
		}
		fmt.Fprintf(w, "Test message queued: delivery %s (tswgate webhook deliveries %s %s).\n", d.ID, pos[0], d.ID)
		return nil
	}
}

func printEndpoints(w io.Writer, es []webhookapi.Endpoint, output string) error {
	if output == "json" {
		return writeJSON(w, es)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPROJECT\tENABLED\tTYPES\tURL\tCREATED")
	for _, e := range es {
		types := strings.Join(e.Types, ",")
		if types == "" {
			types = "all"
		}
		fmt.Fprintf(tw, "%s\t%d\t%t\t%s\t%s\t%s\n", e.ID, e.ProjectID, e.Enabled, types, cell(e.URL),
			e.CreatedAt.Local().Format("2006-01-02 15:04:05"))
	}
	return flushTable(tw, w, len(es), "(no webhook endpoints)")
}

func printSecret(w io.Writer, e webhookapi.Endpoint, output string) error {
	if output == "json" {
		return writeJSON(w, e)
	}
	fmt.Fprintf(w, "Endpoint: %s\nURL:      %s\nSecret:   %s\n", e.ID, cell(e.URL), e.Secret)
	if e.PreviousSecretUntil != nil {
		fmt.Fprintf(w, "The previous secret signs too until %s.\n", e.PreviousSecretUntil.Local().Format(time.RFC3339))
	}
	fmt.Fprintln(w, "Copy the secret now: it cannot be shown again. Verify messages with it (Standard Webhooks).")
	return nil
}

func printDeliveries(w io.Writer, ds []webhookapi.Delivery, output string) error {
	if output == "json" {
		return writeJSON(w, ds)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DELIVERY\tEVENT\tSTATE\tATTEMPTS\tLAST STATUS\tNEXT ATTEMPT\tLAST ERROR")
	for _, d := range ds {
		next, status := "-", "-"
		if d.NextAttempt != nil {
			next = d.NextAttempt.Local().Format("2006-01-02 15:04:05")
		}
		if d.LastStatus != 0 {
			status = fmt.Sprint(d.LastStatus)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", d.ID, d.EventType, d.State, d.Attempts, status, next, orDash(d.LastError))
	}
	return flushTable(tw, w, len(ds), "(no deliveries)")
}

func printDelivery(w io.Writer, d webhookapi.Delivery, output string) error {
	if output == "json" {
		return writeJSON(w, d)
	}
	fmt.Fprintf(w, "Delivery:   %s\nWebhook-id: %s\nEvent:      %s\nState:      %s\nAttempts:   %d\n",
		d.ID, d.EventID, d.EventType, d.State, d.Attempts)
	if d.NextAttempt != nil {
		fmt.Fprintf(w, "Next:       %s\n", d.NextAttempt.Local().Format(time.RFC3339))
	}
	for _, a := range d.Recent {
		fmt.Fprintf(w, "  %s  status %d  %s  %s\n", a.At.Local().Format(time.RFC3339), a.Status,
			a.Duration.Round(time.Millisecond), orDash(a.Error))
	}
	return nil
}

// flushTable writes a table out, and empty when it has no rows.
func flushTable(tw *tabwriter.Writer, w io.Writer, rows int, empty string) error {
	if err := tw.Flush(); err != nil {
		return err
	}
	if rows == 0 {
		fmt.Fprintln(w, empty)
	}
	return nil
}
