package storetest

import (
	"testing"

	"github.com/tswgate/tswgate/auth"
)

func TestNewToken(t *testing.T) {
	tok, cred := NewToken(t, 9, auth.RoleAccounting)
	if err := tok.Validate(); err != nil {
		t.Fatalf("NewToken made an invalid record: %v", err)
	}
	if tok.ProjectID != 9 || tok.Role != auth.RoleAccounting || tok.Status != auth.StatusActive {
		t.Errorf("NewToken(9, accounting) = %+v", tok)
	}
	id, whole, err := auth.ParseAuthorization("Bearer " + cred)
	if err != nil || id != tok.ID || whole != cred {
		t.Fatalf("ParseAuthorization of the credential = %q, %v", id, err)
	}
	if !NewHasher(t).Verify(cred, &tok.SecretHash, tok.PepperID) {
		t.Error("the credential does not verify against the record")
	}
	other, _ := NewToken(t, 9, auth.RoleAccounting)
	if other.ID == tok.ID {
		t.Error("NewToken returned the same id twice")
	}
}
