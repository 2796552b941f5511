package main

import (
	"flag"
	"fmt"
	"strings"
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
		if d := editDistance(word, c); d < bestDist && d < len(word) {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance counts the insertions, deletions, substitutions and
// swaps of neighbours that turn a into b (optimal string alignment).
func editDistance(a, b string) int {
	prev2, prev, cur := make([]int, len(b)+1), make([]int, len(b)+1), make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
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
