# tswgate: make test runs everything CI runs; make bench measures.
GO ?= go
PKGS := ./...

.PHONY: test vet fmt-check unit deploy-check fuzz bench bench-go bench-load bench-ref lag ratelimit-accuracy soak idle scale run build generate docs

test: fmt-check vet deploy-check unit

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

unit:
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

# The alert rules, their unit tests and the Prometheus config (about a second,
# no network). deploy/'s Go tests (part of unit) check the rest of deploy/.
# Without promtool it is skipped, except under CI=true.
deploy-check:
	@if command -v promtool >/dev/null 2>&1; then \
		promtool check rules deploy/prometheus/alerts.yml && \
		promtool test rules deploy/prometheus/alerts_test.yml && \
		promtool check config deploy/prometheus/prometheus.yml; \
	elif [ "$$CI" = true ]; then \
		echo "deploy-check: promtool not found (apt-get install prometheus)"; exit 1; \
	else \
		echo "deploy-check: promtool not found, skipped (apt-get install prometheus)"; \
	fi

# A short run of every fuzz target; the corpus lives in each package's testdata/fuzz.
# Budgets are execution counts (about 10-15 s each on a 2-core machine), not
# durations: with a duration, Go 1.26's fuzzing coordinator can fail a target with
# "context deadline exceeded" and no failing input when the machine is busy
# (golang/go#75804, fixed in Go 1.27). FUZZTIME=30s (or 1000000x) overrides all.
FUZZTIME ?=
fuzz:
	$(GO) test ./auth/ -run '^$$' -fuzz '^FuzzParseAuthorization$$' -fuzztime $(or $(FUZZTIME),150000x)
	$(GO) test ./auth/ -run '^$$' -fuzz '^FuzzMatch$$' -fuzztime $(or $(FUZZTIME),120000x)
	$(GO) test ./auth/ -run '^$$' -fuzz '^FuzzCheckQueryProject$$' -fuzztime $(or $(FUZZTIME),90000x)
	$(GO) test ./auth/ -run '^$$' -fuzz '^FuzzQueryDifferential$$' -fuzztime $(or $(FUZZTIME),120000x)
	$(GO) test ./auth/ -run '^$$' -fuzz '^FuzzCheckMediaType$$' -fuzztime $(or $(FUZZTIME),130000x)
	$(GO) test ./auth/ -run '^$$' -fuzz '^FuzzCheckBody$$' -fuzztime $(or $(FUZZTIME),70000x)
	$(GO) test ./auth/ -run '^$$' -fuzz '^FuzzJSONDifferential$$' -fuzztime $(or $(FUZZTIME),20000x)
	$(GO) test ./auth/ -run '^$$' -fuzz '^FuzzHoldsSecret$$' -fuzztime $(or $(FUZZTIME),100000x)
	$(GO) test ./auth/ -run '^$$' -fuzz '^FuzzRedactSecrets$$' -fuzztime $(or $(FUZZTIME),50000x)
	$(GO) test ./auth/tokenapi/ -run '^$$' -fuzz '^FuzzStrictBody$$' -fuzztime $(or $(FUZZTIME),20000x)
	$(GO) test ./proxy/ -run '^$$' -fuzz '^FuzzClientAddr$$' -fuzztime $(or $(FUZZTIME),150000x)
	$(GO) test ./proxy/ -run '^$$' -fuzz '^FuzzAppendJSONString$$' -fuzztime $(or $(FUZZTIME),70000x)
	$(GO) test ./proxy/ -run '^$$' -fuzz '^FuzzReadResponse$$' -fuzztime $(or $(FUZZTIME),150000x)
	$(GO) test ./proxy/ -run '^$$' -fuzz '^FuzzReadResponseBuilt$$' -fuzztime $(or $(FUZZTIME),150000x)
	$(GO) test ./proxy/ -run '^$$' -fuzz '^FuzzFramingWatch$$' -fuzztime $(or $(FUZZTIME),80000x)
	$(GO) test ./proxy/ -run '^$$' -fuzz '^FuzzFramingWatchStreams$$' -fuzztime $(or $(FUZZTIME),80000x)
	$(GO) test ./secretscan/ -run '^$$' -fuzz '^FuzzParseReport$$' -fuzztime $(or $(FUZZTIME),60000x)
	$(GO) test ./identity/ -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(or $(FUZZTIME),150000x)
	$(GO) test ./internal/h1/ -run '^$$' -fuzz '^FuzzParseHead$$' -fuzztime $(or $(FUZZTIME),200000x)

bench: bench-go bench-load bench-ref

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./auth/ ./proxy/ ./limiter/ ./usage/ ./internal/h1/

# End to end against the bare proxy: the defaults (embedded store, no
# limits), then on Redis with a cluster-scope limit on the token (high
# enough never to refuse: what the limiter costs, not what it refuses).
bench-load:
	$(GO) run ./tools/tswbench
	$(GO) run ./tools/tswbench -redis -set TSWGATE_RATE_OWNER=1000000

# Against nginx and haproxy as references (apt-get installs them when
# root): valid token, invalid-token flood, p99 at half capacity, as
# ratios to nginx (about 3 minutes each), with the defaults and then on
# Redis with a cluster-scope limit. docs/performance.md has the figures.
bench-ref:
	$(GO) run ./tools/tswbench -ref -rounds 3
	$(GO) run ./tools/tswbench -ref -rounds 3 -redis -set TSWGATE_RATE_OWNER=1000000

# Revocation lag across 3 replicas on one throwaway Redis (loopback).
LAGFLAGS ?=
lag:
	$(GO) run ./tools/tswlag $(LAGFLAGS)

# Cluster rate-limit accuracy: 3 replicas on one throwaway Redis offered 2x a
# token's limit for 60s; fails outside 95-110% of the ideal or above one
# limiter call to Redis per five requests (e.g. RATEFLAGS='-lease 200ms').
RATEFLAGS ?=
ratelimit-accuracy:
	$(GO) run ./tools/tswrate $(RATEFLAGS)

# A 10-minute soak (2 replicas, 500 req/s, Redis restarted every 2m);
# SOAKFLAGS=-quick runs it for 60s with a restart every 20s.
SOAKFLAGS ?=
soak:
	$(GO) run ./tools/tswsoak $(SOAKFLAGS)

# Redis commands per second of 3 idle replicas with a million tokens
# (IDLEFLAGS='-before BIN' adds another build for comparison); scale: a
# Zipf mix of the million through a 100k-entry cache.
IDLEFLAGS ?=
idle:
	$(GO) run ./tools/tswidle -n 1000000 -replicas 3 -settle 45s -window 60s $(IDLEFLAGS)
scale:
	$(GO) run ./tools/tswidle -scale -n 1000000 -cache 100000 -replicas 3 -settle 30s -window 60s

# The route table (from TeraSwitch's OpenAPI spec) and docs/configuration.md.
generate:
	$(GO) generate ./auth/ ./config/

# docs/configuration.md, from the settings table in config/settings.go;
# make test (config's TestSettingsDocumented) fails while it is out of date.
docs:
	$(GO) generate ./config/

build:
	$(GO) build -o bin/tswgate ./cmd/tswgate

run:
	$(GO) run ./cmd/tswgate quickstart
