package secretscan

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Report is one match in a secret scanning report.
type Report struct {
	// Token is the matched string: what GitHub found, not necessarily one
	// of our tokens.
	Token string `json:"token"`
	// Type is the secret type the provider registered with GitHub.
	Type string `json:"type"`
	// URL is where the match was found.
	URL string `json:"url"`
	// Source is the kind of place ("content", "commit", "issue_comment", …).
	Source string `json:"source"`
}

// Label is a report's verdict in the feedback.
type Label string

// Labels of the feedback.
const (
	TruePositive  Label = "true_positive"
	FalsePositive Label = "false_positive"
)

// Feedback is one entry of the answer to a report, in GitHub's format: the
// token by its SHA-256 (hex), never the token itself.
type Feedback struct {
	TokenHash string `json:"token_hash"`
	TokenType string `json:"token_type"`
	Label     Label  `json:"label"`
}

// TokenHash is the hex SHA-256 of a reported token, as the feedback
// names it.
func TokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// ErrReport means a report body is not a JSON array of matches.
var ErrReport = errors.New("secretscan: not a report")

// ParseReport decodes a report body: a JSON array of objects with a
// string "token" each (other fields optional, unknown ones ignored),
// holding at most max matches, with nothing after it.
func ParseReport(body []byte, max int) ([]Report, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil, fmt.Errorf("%w: want a JSON array", ErrReport)
	}
	reports := []Report{}
	for dec.More() {
		if len(reports) == max {
			return nil, fmt.Errorf("%w: more than %d matches", ErrReport, max)
		}
		var r struct {
			Report
			Token *string `json:"token"`
		}
		if err := dec.Decode(&r); err != nil {
			return nil, fmt.Errorf("%w: match %d: %w", ErrReport, len(reports)+1, err)
		}
		if r.Token == nil {
			return nil, fmt.Errorf("%w: match %d has no token", ErrReport, len(reports)+1)
		}
		r.Report.Token = *r.Token
		reports = append(reports, r.Report)
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrReport, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the array", ErrReport)
	}
	return reports, nil
}
