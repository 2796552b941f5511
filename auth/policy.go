package auth

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// ProjectPolicy is what an admin sets for a whole project: how long its
// tokens may live and a rate limit all its tokens share. The zero value
// is no policy.
type ProjectPolicy struct {
	// MaxLifetime bounds a token's life, from its creation to its expiry;
	// 0 means no bound. A token created, rotated, given an expiry or
	// activated beyond it is refused (RequireExpiry aside, a token without
	// expiry is allowed only when MaxLifetime is 0).
	MaxLifetime time.Duration
	// RequireExpiry refuses tokens without an expiry.
	RequireExpiry bool
	// RateLimit (requests per second) and Burst are the project's limit,
	// shared by all its tokens besides each token's own; RateLimit 0
	// means none, Burst 0 means ceil(RateLimit).
	RateLimit float64
	Burst     int
	// UpdatedAt is when the policy was last set.
	UpdatedAt time.Time
}

// IsZero reports whether p sets nothing (UpdatedAt aside): no policy.
func (p ProjectPolicy) IsZero() bool {
	return p.MaxLifetime == 0 && !p.RequireExpiry && p.RateLimit == 0 && p.Burst == 0
}

// Validate checks that p can be stored.
func (p ProjectPolicy) Validate() error {
	var errs []error
	if p.MaxLifetime < 0 {
		errs = append(errs, errors.New("max lifetime: must not be negative"))
	} else if p.MaxLifetime > 0 && p.MaxLifetime < time.Minute {
		errs = append(errs, errors.New("max lifetime: at least 1m (0 means no bound)"))
	}
	errs = append(errs, validateLimit(p.RateLimit, p.Burst, "burst")...)
	return errors.Join(errs...)
}

// LifetimeViolation returns why a token created at created and expiring
// at expires (zero: never) breaks p's lifetime rules, or "" when it does
// not. The reason names the limit, e.g. "no expiry, and the project
// requires one".
func (p ProjectPolicy) LifetimeViolation(created, expires time.Time) string {
	switch {
	case expires.IsZero() && p.RequireExpiry:
		return "no expiry, and the project requires one"
	case expires.IsZero() && p.MaxLifetime > 0:
		return fmt.Sprintf("no expiry, and the project's maximum lifetime is %s", FormatLifetime(p.MaxLifetime))
	case p.MaxLifetime > 0 && expires.Sub(created) > p.MaxLifetime:
		return fmt.Sprintf("lifetime %s exceeds the project's maximum of %s (expiry %s at the latest)",
			FormatLifetime(expires.Sub(created).Round(time.Second)), FormatLifetime(p.MaxLifetime),
			created.Add(p.MaxLifetime).UTC().Format(time.RFC3339))
	}
	return ""
}

// FormatLifetime writes a lifetime in days when it is a whole number of
// them ("90d"), else as a Go duration ("36h0m0s").
func FormatLifetime(d time.Duration) string {
	const day = 24 * time.Hour
	if d > 0 && d%day == 0 {
		return fmt.Sprintf("%dd", d/day)
	}
	return d.String()
}

// ParseLifetime reads a lifetime as FormatLifetime writes it: a number of
// days ("90d") or a Go duration ("720h").
func ParseLifetime(s string) (time.Duration, error) {
	var days int64
	if n, err := fmt.Sscanf(s, "%dd", &days); err == nil && n == 1 && fmt.Sprintf("%dd", days) == s {
		if days < 0 || days > math.MaxInt64/int64(24*time.Hour) {
			return 0, fmt.Errorf("%q: out of range", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a lifetime such as 90d or 720h", s)
	}
	return d, nil
}
