package main

import (
	"bytes"
	"os"
	"testing"
)

// TestGeneratedRoutesUpToDate fails when auth/routes_gen.go does not match
// the embedded spec; run go generate ./auth to fix it.
func TestGeneratedRoutesUpToDate(t *testing.T) {
	want, err := generate()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../auth/routes_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("auth/routes_gen.go is stale: run go generate ./auth")
	}
}
