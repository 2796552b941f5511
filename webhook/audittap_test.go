package webhook

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/storetest"
)

type auditLog struct{ events []auth.AuditEvent }

func (l *auditLog) AppendAudit(_ context.Context, ev *auth.AuditEvent) error {
	l.events = append(l.events, *ev)
	return nil
}

func TestAuditTapPublishesChanges(t *testing.T) {
	old, _ := storetest.NewToken(t, 42, auth.RoleOwner)
	succ, _ := storetest.NewToken(t, 42, auth.RoleOwner)
	tokens := tokenMap{old.ID: old, succ.ID: succ}
	pub := &fakePublisher{ch: make(chan Event, 20)}
	trail := &auditLog{}
	tap := &AuditTap{Next: trail, Tokens: tokens, Publisher: pub}
	at := time.Unix(1_800_000_000, 0)
	ok := func(action, kind, actor, detail string) auth.AuditEvent {
		return auth.AuditEvent{Time: at, Action: action, ActorKind: kind, Actor: actor, ProjectID: 42,
			TokenID: old.ID, Outcome: auth.OutcomeOK, Detail: detail}
	}
	cases := []struct {
		ev   auth.AuditEvent
		typ  string
		want func(Event) bool
	}{
		{ok("token.create", auth.ActorAdminKey, "28cd078a", ""), TypeTokenCreated,
			func(e Event) bool { return e.Data.By.ID == "28cd078a" }},
		{ok("token.deactivate", auth.ActorToken, succ.ID, ""), TypeTokenUpdated,
			func(e Event) bool { return len(e.Data.Changes) == 1 && e.Data.Changes[0] == "status" }},
		{ok("token.update", auth.ActorAdminKey, "k", "rate_limit=10 burst=20 expiry_changed=true"), TypeTokenUpdated,
			func(e Event) bool { return len(e.Data.Changes) == 3 && e.Data.Changes[2] == "expiry" }},
		{ok("token.rotate", auth.ActorToken, old.ID, "new token "+succ.ID+", grace 1h0m0s"), TypeTokenRotated,
			func(e Event) bool { return e.Data.Successor.ID == succ.ID && e.Data.Grace == "1h0m0s" }},
		// The detail of an update of the lists, and of a rotation that
		// changed the successor, as the token API writes them.
		{ok("token.update", auth.ActorAdminKey, "k", "status=active; scopes (role owner)→compute.read; allowed_ips (any)→192.0.2.0/24"), TypeTokenUpdated,
			func(e Event) bool { return slices.Equal(e.Data.Changes, []string{"status", "scopes", "allowed_ips"}) }},
		{ok("token.update", auth.ActorAdminKey, "k", "allowed_ips 10.0.0.0/8,192.0.2.0/24→(any)"), TypeTokenUpdated,
			func(e Event) bool { return slices.Equal(e.Data.Changes, []string{"allowed_ips"}) }},
		{ok("token.rotate", auth.ActorToken, old.ID, "new token "+succ.ID+", grace 1h0m0s, scopes compute.read→(role owner), expires 2027-01-01T00:00:00.000Z"), TypeTokenRotated,
			func(e Event) bool { return e.Data.Successor.ID == succ.ID && e.Data.Grace == "1h0m0s" }},
		{ok("token.revoke", "secret_scanning", "github", "leaked"), TypeTokenRevoked,
			func(e Event) bool { return e.Data.By.Kind == ActorSecretScanning && e.Data.By.ID == "github" }},
		{ok("token.expire", auth.ActorSystem, "", ""), TypeTokenExpired, func(Event) bool { return true }},
	}
	for _, c := range cases {
		if err := tap.AppendAudit(context.Background(), &c.ev); err != nil {
			t.Fatal(err)
		}
		e := <-pub.ch
		if e.Type != c.typ || e.ProjectID != 42 || e.Data.Token.ID != old.ID || !e.Time.Equal(at) || !c.want(e) {
			t.Errorf("%s gave %s %+v", c.ev.Action, e.Type, e.Data)
		}
	}
	refused := ok("token.create", auth.ActorToken, old.ID, "")
	refused.Outcome, refused.Reason = auth.OutcomeRefused, "role_forbidden"
	list := ok("token.list", auth.ActorToken, old.ID, "")
	for _, ev := range []auth.AuditEvent{refused, list} {
		_ = tap.AppendAudit(context.Background(), &ev)
	}
	if len(pub.ch) != 0 {
		t.Errorf("%d events for refusals and reads", len(pub.ch))
	}
	if len(trail.events) != len(cases)+2 {
		t.Errorf("the trail has %d events, want every one", len(trail.events))
	}
}

type failingTrail struct{}

func (failingTrail) AppendAudit(context.Context, *auth.AuditEvent) error { return errors.New("down") }

func TestAuditTapPublishesWhenTheTrailFails(t *testing.T) {
	tok, _ := storetest.NewToken(t, 42, auth.RoleOwner)
	pub := &fakePublisher{ch: make(chan Event, 1)}
	tap := &AuditTap{Next: failingTrail{}, Tokens: tokenMap{tok.ID: tok}, Publisher: pub}
	ev := auth.AuditEvent{Action: "token.revoke", TokenID: tok.ID, ProjectID: 42, Outcome: auth.OutcomeOK}
	if err := tap.AppendAudit(context.Background(), &ev); err == nil {
		t.Error("the trail's error was swallowed")
	}
	if e := <-pub.ch; e.Type != TypeTokenRevoked {
		t.Errorf("event %s", e.Type)
	}
}
