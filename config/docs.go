package config

import (
	_ "embed"
	"strings"
)

//go:generate go run ./internal/gendoc -o ../docs/configuration.md

// configurationTemplate is the page around the settings table.
//
//go:embed configuration.md.tmpl
var configurationTemplate string

// settingsMarker is replaced by MarkdownTable in configurationTemplate.
const settingsMarker = "{{settings table}}\n"

// ConfigurationPage renders docs/configuration.md: the page of
// configuration.md.tmpl with MarkdownTable in place of its marker.
// TestSettingsDocumented checks that the file in the repository is this;
// "go generate ./config/" (make docs) writes it.
func ConfigurationPage() string {
	before, after, ok := strings.Cut(configurationTemplate, settingsMarker)
	if !ok {
		panic("config: configuration.md.tmpl lacks " + strings.TrimSpace(settingsMarker)) // a build defect
	}
	return before + MarkdownTable() + after
}
