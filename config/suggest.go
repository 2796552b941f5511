package config

import (
	"fmt"
	"strings"

	"github.com/tswgate/tswgate/internal/typo"
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
		d := typo.Distance(s, n)
		if d <= max(2, len(n)/3) && (bestDist < 0 || d < bestDist) {
			best, bestDist = c, d
		}
	}
	return best
}
