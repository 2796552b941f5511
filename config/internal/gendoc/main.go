// Command gendoc writes docs/configuration.md from the settings table:
// config.ConfigurationPage. Run it with "go generate ./config/" (make docs).
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/tswgate/tswgate/config"
)

func main() {
	out := flag.String("o", "", "file to write (default: standard output)")
	flag.Parse()
	page := config.ConfigurationPage()
	if *out == "" {
		fmt.Print(page)
		return
	}
	if err := os.WriteFile(*out, []byte(page), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gendoc:", err)
		os.Exit(1)
	}
}
