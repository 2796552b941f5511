package main

import (
	"flag"
	"fmt"
	"strings"

	"github.com/tswgate/tswgate/internal/typo"
)

// maxTypo is the most edits between a mistyped word and the one
// suggested for it.
const maxTypo = 2

// didYouMean returns ` (did you mean "x"?)` for the candidate closest to
// word, when one is within maxTypo edits of it, else "".
func didYouMean(word string, candidates []string) string {
	if best := closest(word, candidates); best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return ""
}

// closest returns the candidate fewest edits from word, when it is within
// maxTypo edits and fewer than word's length, else "".
func closest(word string, candidates []string) string {
	best, bestDist := "", maxTypo+1
	for _, c := range candidates {
		if d := typo.Distance(word, c); d < bestDist && d < len(word) {
			best, bestDist = c, d
		}
	}
	return best
}

// listWords splits a list written for messages ("a, b or c") into its
// words.
func listWords(list string) []string {
	return strings.Fields(strings.NewReplacer(",", " ", " or ", " ").Replace(list))
}

// flagHint returns err's message, followed, for an unknown flag, by the
// closest flag of fs, and for a value that does not parse, by what the
// flag wants.
func flagHint(fs *flag.FlagSet, err error) string {
	if f := badValueFlag(fs, err); f != nil {
		return fmt.Sprintf("%v (--%s: %s)", err, f.Name, f.Usage)
	}
	name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: -")
	if !ok {
		return err.Error()
	}
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	if best := closest(strings.TrimPrefix(name, "-"), names); best != "" {
		return fmt.Sprintf("%v (did you mean --%s?)", err, best)
	}
	return err.Error()
}

// badValueFlag returns the flag of fs whose value err says does not
// parse ("invalid value "x" for flag -project: …"), else nil.
func badValueFlag(fs *flag.FlagSet, err error) *flag.Flag {
	msg := err.Error()
	if !strings.HasPrefix(msg, "invalid value ") {
		return nil
	}
	_, rest, ok := strings.Cut(msg, " for flag -")
	if !ok {
		return nil
	}
	name, _, _ := strings.Cut(rest, ":")
	return fs.Lookup(name)
}
