// Package devtool holds what the repository's development tools
// (tools/tswbench, tools/tswlag, tools/tswsoak) share: child processes that
// cannot outlive the tool, free loopback ports, building tswgate, a
// throwaway redis-server, starting gateways and creating tokens through
// their admin API, machine facts, percentiles and Markdown formatting, and
// reading a Prometheus /metrics page.
//
// It is for those tools only: every address it hands out or listens on is
// on 127.0.0.1.
package devtool
