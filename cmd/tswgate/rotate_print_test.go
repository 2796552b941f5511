package main

import (
	"strings"
	"testing"
	"time"

	"github.com/tswgate/tswgate/auth/tokenapi"
)

// TestRotationWarningPrinted: a rotation that stands with a warning (the
// old token's end not confirmed) says so to a person, not only in JSON.
func TestRotationWarningPrinted(t *testing.T) {
	exp := time.Now().Add(24 * time.Hour)
	resp := tokenapi.RotateResponse{
		Token:    tokenapi.Token{ID: "tsw_new", Role: "owner", Status: "active", Token: "tsw_new:secret"},
		Previous: tokenapi.Token{ID: "tsw_old", ProjectID: 42, ExpiresAt: &exp},
		Warning:  "The token store did not confirm that the old token tsw_old was ended: the old one may still work.",
	}
	var out strings.Builder
	printRotation(&out, resp)
	if !strings.Contains(out.String(), "Warning: The token store did not confirm") {
		t.Errorf("output does not carry the warning:\n%s", out.String())
	}
	resp.Warning = ""
	out.Reset()
	printRotation(&out, resp)
	if strings.Contains(out.String(), "Warning") {
		t.Errorf("a warning printed without one:\n%s", out.String())
	}
}
