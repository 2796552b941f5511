package auth

import (
	"errors"
	"fmt"
)

// MaxLineageDepth is the most ancestors a token may have in its
// rate-limit lineage, its root included: a token MaxLineageDepth levels
// below its root makes no tokens (DescendLineage refuses), so a request
// checks at most MaxLineageDepth shared buckets besides its own.
const MaxLineageDepth = 8

// ErrLineageTooDeep is DescendLineage's refusal of a token that would be
// more than MaxLineageDepth levels below its lineage's root.
var ErrLineageTooDeep = fmt.Errorf("rate-limit lineage deeper than %d tokens", MaxLineageDepth)

// LineageLink is one ancestor of a token: its id, and its limit when the
// token was made from it (Rate 0: none; Burst 0: ceil(Rate)). The limit
// that binds is the ancestor's as it is now; the one recorded here binds
// only once the ancestor's record is gone.
type LineageLink struct {
	ID     string
	Rate   float64
	Burst  int
	Shadow bool
}

// Depth returns the number of t's ancestors: 0 for a root, 1 for a token
// made by a root, and 1 more per token between.
func (l *Lineage) Depth() int {
	if l.Root == "" {
		return 0
	}
	n := 1
	for n-1 < len(l.Via) && l.Via[n-1].ID != "" {
		n++
	}
	return n
}

// Ancestor returns ancestor i (0 <= i < Depth()): the root (with the
// lineage's limit) for 0, then Via from the root's child down.
func (l *Lineage) Ancestor(i int) LineageLink {
	if i == 0 {
		return LineageLink{ID: l.Root, Rate: l.Rate, Burst: l.Burst, Shadow: l.Shadow}
	}
	return l.Via[i-1]
}

// DescendLineage returns the lineage of a token made by maker, whose
// effective limit is (rate, burst, shadow): maker's lineage with maker
// added below it, or, when maker is a root, a lineage rooted at maker.
// It returns ErrLineageTooDeep when the token would have more than
// MaxLineageDepth ancestors.
//
// When replaces is set (the token is the successor of maker's rotation
// of itself), maker is added all the same, as the token's Successor, so
// that the successor draws on maker's bucket and a rotation gives no
// fresh burst; a successor of a Successor keeps its maker's lineage as it
// is (the first token of the rotations stays the nearest ancestor), so
// that rotating again and again never deepens a line. A rotation may go
// one deeper than MaxLineageDepth.
func DescendLineage(maker *Token, rate float64, burst int, shadow bool, replaces bool) (Lineage, error) {
	if rate <= 0 {
		rate, burst, shadow = 0, 0, false
	}
	l := maker.Lineage
	switch {
	case replaces && l.Successor:
		return l, nil
	case l.IsZero():
		return Lineage{Root: maker.ID, Rate: rate, Burst: burst, Shadow: shadow, Successor: replaces}, nil
	}
	d := l.Depth()
	if d >= MaxLineageDepth && !replaces {
		return Lineage{}, ErrLineageTooDeep
	}
	l.Via[d-1] = LineageLink{ID: maker.ID, Rate: rate, Burst: burst, Shadow: shadow}
	l.Successor = replaces
	return l, nil
}

// validateVia checks the ancestors below the root: packed from the
// first entry, ids of other tokens with valid limits, none twice.
func (t *Token) validateVia() []error {
	l := &t.Lineage
	d := l.Depth()
	var errs []error
	for i := max(d-1, 0); i < len(l.Via); i++ {
		if l.Via[i] != (LineageLink{}) {
			return append(errs, errors.New("lineage via: a gap or an entry without a root"))
		}
	}
	seen := map[string]bool{l.Root: true, t.ID: true}
	for i := 1; i < d; i++ {
		a := l.Ancestor(i)
		if !ValidID(a.ID) || seen[a.ID] {
			errs = append(errs, errors.New("lineage via: not the id of another ancestor"))
		}
		seen[a.ID] = true
		if a.Shadow && a.Rate == 0 {
			errs = append(errs, errors.New("lineage via shadow: set without a rate limit"))
		}
		errs = append(errs, validateLimit(a.Rate, a.Burst, "lineage via burst")...)
	}
	return errs
}
