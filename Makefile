# tswgate: make test runs everything CI runs; make bench measures.
GO ?= go
PKGS := ./...

.PHONY: test vet fmt-check unit fuzz bench bench-go bench-load run build generate

test: fmt-check vet unit

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

unit:
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

# A short run of every fuzz target; the corpus lives in each package's testdata/fuzz.
FUZZTIME ?= 15s
fuzz:
	$(GO) test ./auth/ -run '^$$' -fuzz '^FuzzParseAuthorization$$' -fuzztime $(FUZZTIME)
	$(GO) test ./auth/ -run '^$$' -fuzz '^FuzzMatch$$' -fuzztime $(FUZZTIME)
	$(GO) test ./auth/ -run '^$$' -fuzz '^FuzzCheckQueryProject$$' -fuzztime $(FUZZTIME)
	$(GO) test ./auth/ -run '^$$' -fuzz '^FuzzCheckBodyProject$$' -fuzztime $(FUZZTIME)

bench: bench-go bench-load

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./auth/ ./proxy/ ./limiter/

bench-load:
	$(GO) run ./cmd/tswbench

generate:
	$(GO) generate ./auth/

build:
	$(GO) build -o bin/tswgate ./cmd/tswgate

run:
	$(GO) run ./cmd/tswgate quickstart
