package auth

import (
	"strings"
	"testing"
	"time"
)

func TestLifetimeViolation(t *testing.T) {
	day := 24 * time.Hour
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		p       ProjectPolicy
		expires time.Time
		want    string // substring; "" means no violation
	}{
		{"no policy, no expiry", ProjectPolicy{}, time.Time{}, ""},
		{"required, missing", ProjectPolicy{RequireExpiry: true}, time.Time{}, "requires one"},
		{"required, present", ProjectPolicy{RequireExpiry: true}, created.Add(day), ""},
		{"max, missing", ProjectPolicy{MaxLifetime: 90 * day}, time.Time{}, "maximum lifetime is 90d"},
		{"max, within", ProjectPolicy{MaxLifetime: 90 * day}, created.Add(90 * day), ""},
		{"max, beyond", ProjectPolicy{MaxLifetime: 90 * day}, created.Add(91 * day), "lifetime 91d exceeds the project's maximum of 90d (expiry 2026-04-01T00:00:00Z at the latest)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.p.LifetimeViolation(created, tt.expires)
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Errorf("LifetimeViolation = %q; want %q", got, tt.want)
			}
		})
	}
}

func TestParseLifetime(t *testing.T) {
	for in, want := range map[string]time.Duration{"90d": 90 * 24 * time.Hour, "720h": 720 * time.Hour, "1d": 24 * time.Hour} {
		if got, err := ParseLifetime(in); err != nil || got != want {
			t.Errorf("ParseLifetime(%q) = %v, %v; want %v", in, got, err, want)
		}
		if in != "720h" && FormatLifetime(want) != in {
			t.Errorf("FormatLifetime(%v) = %q; want %q", want, FormatLifetime(want), in)
		}
	}
	for _, in := range []string{"", "90", "d", "9x", "-1dd"} {
		if _, err := ParseLifetime(in); err == nil {
			t.Errorf("ParseLifetime(%q) succeeded", in)
		}
	}
}

func TestProjectPolicyValidate(t *testing.T) {
	for _, p := range []ProjectPolicy{{MaxLifetime: -1}, {MaxLifetime: time.Second}, {RateLimit: -1}, {Burst: 2}, {RateLimit: 1, Burst: -1}} {
		if p.Validate() == nil {
			t.Errorf("Validate(%+v) = nil; want an error", p)
		}
	}
	if err := (ProjectPolicy{MaxLifetime: time.Hour, RequireExpiry: true, RateLimit: 5, Burst: 10}).Validate(); err != nil {
		t.Errorf("Validate(valid) = %v", err)
	}
}
