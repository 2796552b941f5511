package webhook

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth"
	"github.com/tswgate/tswgate/auth/storetest"
)

// everyEvent builds one event of each type around a token whose name,
// and every other field a caller fills in, holds a credential.
func everyEvent(t *testing.T) (events []Event, secrets []string) {
	t.Helper()
	tok, cred := storetest.NewToken(t, 42, auth.RoleOwner)
	succ, cred2 := storetest.NewToken(t, 42, auth.RoleOwner)
	tok.Name = "ci " + cred
	tok.ExpiresAt = time.Now().Add(48 * time.Hour)
	by := Actor{Kind: auth.ActorToken, ID: cred2}
	now := time.Now()
	revoked := *tok
	revoked.RevokedAt, revoked.SecretHash, revoked.PepperID = now, [32]byte{}, ""
	events = []Event{
		TokenCreated(tok, by, now),
		TokenUpdated(tok, by, []string{"status", "name " + cred}, now),
		TokenRotated(tok, succ, by, time.Hour, now),
		TokenRevoked(&revoked, Actor{Kind: ActorSecretScanning, ID: "github"}, now),
		TokenExpired(tok, now),
		TokenExpiring(tok, now),
		TokenLeaked(&revoked, Leak{Reporter: "github", URL: "https://github.com/o/r/blob/x/.env?" + cred, Source: "content " + cred, Revoked: true}, now),
		TokenRateLimited(tok, 120, now.Add(-time.Minute), time.Minute, 15*time.Minute, now),
	}
	return events, []string{cred, cred2}
}

func TestPayloadsHoldNoSecret(t *testing.T) {
	events, creds := everyEvent(t)
	pattern := regexp.MustCompile(`(?i)tswsk_[0-9a-z]{2}`)
	seen := map[string]bool{}
	for _, ev := range events {
		seen[ev.Type] = true
		body, err := ev.Body()
		if err != nil {
			t.Fatal(err)
		}
		s := string(body)
		for _, c := range creds {
			secret := c[auth.IDLen+1:]
			if strings.Contains(s, secret) || strings.Contains(s, secret[len(auth.SecretPrefix):]) {
				t.Errorf("%s payload holds a secret: %s", ev.Type, s)
			}
		}
		if pattern.MatchString(s) {
			t.Errorf("%s payload holds something like a secret: %s", ev.Type, s)
		}
		for _, field := range []string{"hash", "pepper"} {
			if strings.Contains(strings.ToLower(s), field) {
				t.Errorf("%s payload names %q: %s", ev.Type, field, s)
			}
		}
	}
	for _, typ := range Types() {
		if !seen[typ] {
			t.Errorf("no test event of type %s", typ)
		}
	}
}

func TestPayloadShape(t *testing.T) {
	tok, _ := storetest.NewToken(t, 42, auth.RoleAccounting)
	at := time.Date(2026, 11, 27, 10, 26, 5, 0, time.UTC)
	tok.RevokedAt = at
	ev := TokenRevoked(tok, Actor{Kind: ActorSecretScanning, ID: "github"}, at)
	body, err := ev.Body()
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Type      string    `json:"type"`
		Timestamp time.Time `json:"timestamp"`
		Data      struct {
			Token map[string]any `json:"token"`
			By    Actor          `json:"by"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Type != TypeTokenRevoked || !p.Timestamp.Equal(at) || p.Data.By.Kind != "secret_scanning" || p.Data.By.ID != "github" {
		t.Errorf("payload %s", body)
	}
	if p.Data.Token["id"] != tok.ID || p.Data.Token["status"] != "revoked" || p.Data.Token["role"] != "accounting" ||
		p.Data.Token["project_id"] != float64(42) {
		t.Errorf("token %v", p.Data.Token)
	}
	if !strings.HasPrefix(ev.ID, "msg_") || len(ev.ID) != 28 || ev.ProjectID != 42 {
		t.Errorf("event id %q, project %d", ev.ID, ev.ProjectID)
	}
}

func TestDedupKeys(t *testing.T) {
	tok, _ := storetest.NewToken(t, 1, auth.RoleOwner)
	tok.ExpiresAt = time.Now().Add(time.Hour)
	now := time.Now()
	if a, b := TokenExpiring(tok, now), TokenExpiring(tok, now.Add(time.Minute)); a.DedupKey == "" || a.DedupKey != b.DedupKey {
		t.Errorf("expiring keys %q, %q: want one per token and expiry", a.DedupKey, b.DedupKey)
	}
	tok.ExpiresAt = tok.ExpiresAt.Add(time.Hour)
	if a, b := TokenExpiring(tok, now), TokenExpiring(&auth.Token{ID: tok.ID}, now); a.DedupKey == b.DedupKey {
		t.Error("a new expiry has the old expiry's dedup key")
	}
	r := TokenRateLimited(tok, 100, now, time.Minute, 15*time.Minute, now)
	if r.DedupKey == "" || r.DedupTTL != 15*time.Minute {
		t.Errorf("rate-limited dedup %q %s", r.DedupKey, r.DedupTTL)
	}
}

func TestExpiring(t *testing.T) {
	now := time.Now()
	tok := &auth.Token{ExpiresAt: now.Add(6 * 24 * time.Hour)}
	if !Expiring(tok, now) {
		t.Error("a token expiring in 6 days is not expiring")
	}
	for _, e := range []time.Time{{}, now.Add(8 * 24 * time.Hour), now.Add(-time.Second)} {
		if Expiring(&auth.Token{ExpiresAt: e}, now) {
			t.Errorf("expiry %v counts as expiring", e)
		}
	}
	if Expiring(&auth.Token{ExpiresAt: now.Add(time.Hour), RevokedAt: now}, now) {
		t.Error("a revoked token counts as expiring")
	}
}
