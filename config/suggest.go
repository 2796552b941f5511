package config

import (
	"fmt"
	"strings"
)

// suggestEnv says what an unknown TSWGATE_ variable was probably meant to
// be, or lists the valid ones.
func suggestEnv(name string) string {
	names := make([]string, len(settings))
	for i := range settings {
		names[i] = settings[i].Env
	}
	norm := func(s string) string {
		return strings.ReplaceAll(strings.TrimPrefix(strings.ToUpper(s), EnvPrefix), "-", "_")
	}
	if best := closest(norm(name), names, norm); best != "" {
		return fmt.Sprintf("did you mean %s?", best)
	}
	return "valid settings are " + strings.Join(names, ", ")
}

// suggestJSON says what an unknown config file key was probably meant to
// be, or lists the valid ones.
func suggestJSON(key string) string {
	keys := make([]string, len(settings))
	for i := range settings {
		keys[i] = settings[i].JSON
	}
	norm := func(s string) string {
		return strings.ReplaceAll(strings.TrimPrefix(strings.ToLower(s), strings.ToLower(EnvPrefix)), "-", "_")
	}
	if best := closest(norm(key), keys, norm); best != "" {
		return fmt.Sprintf("did you mean %q?", best)
	}
	return "valid keys are " + strings.Join(keys, ", ")
}

// closest returns the candidate whose normalized form is nearest to s in
// edit distance, if it is near enough to be a likely typo, or "".
func closest(s string, candidates []string, norm func(string) string) string {
	best, bestDist := "", -1
	for _, c := range candidates {
		n := norm(c)
		d := editDistance(s, n)
		if d <= max(2, len(n)/3) && (bestDist < 0 || d < bestDist) {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
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
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
