# The README's two commands are `make demo` and `make test`.
GO       ?= go
BIN      := bin
PKGS     := ./...
# TOOLS is the tools module (its own go.mod, which points back here with a
# replace line): the benchmark tools (cmd/benchrun, cmd/siobench) and the
# deployment tests (test/deploy), with what only they need (gonum/plot,
# k8s.io/api, kustomize), so that depending on the SDK does not pull those in.
# Each target below that builds, vets or tests covers both modules.
TOOLS    := tools

.PHONY: all build test django-test django-chat test-deps fmt-check staticcheck client-script lint fuzz cover bench demo clean

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/...
	$(GO) -C $(TOOLS) build -o $(CURDIR)/$(BIN)/ ./cmd/...

# test checks formatting, go vet and staticcheck, then runs the whole suite
# of both modules (the root and tools/): unit, fuzz seeds, integration
# against a real Redis (testcontainers-go with Docker, else a local
# redis-server), and the end-to-end suites with the official
# socket.io-client 0.9.16. Everything runs under the race detector: the
# tests, and the gateway and worker processes they start (a race ends the
# process, which fails its test), except one more run of the codec's
# allocation test without it (-race makes sync.Pool drop items, so pooled code
# allocates more). go test runs through internal/testsummary,
# which prints what go test prints, then the 15 slowest tests (where to
# look when the suite grows long), and ends with the list of skipped tests
# and why (a missing redis-server, node, chromium or haproxy), keeping go
# test's exit status.
test: test-deps fmt-check
	$(GO) vet $(PKGS)
	$(GO) -C $(TOOLS) vet $(PKGS)
	$(MAKE) --no-print-directory staticcheck
	$(GO) test -count=1 -run 'Allocations' ./pkg/protocol
	$(MAKE) --no-print-directory django-test
	REALTIME_TEST_RACE=1 GORACE=halt_on_error=1 $(GO) run ./internal/testsummary -C . -C $(TOOLS) -race -count=1 -timeout 25m $(PKGS)

# django-test runs the Django app's unit tests (python/django-realtime) with
# Django's test runner on Debian's python3-django under /usr/bin/python3
# (PYTHON). Without Django it is skipped with a note, except in CI (CI set),
# where that is a failure.
PYTHON ?= /usr/bin/python3
django-test:
	@if $(PYTHON) -c 'import django' 2>/dev/null; then $(PYTHON) python/django-realtime/runtests.py; \
	elif [ -n "$$CI" ]; then echo "Django is not installed for $(PYTHON) (CI is set, so this fails): apt-get install python3-django"; exit 1; \
	else echo "Django is not installed for $(PYTHON): django-test skipped (apt-get install python3-django)"; fi

# django-chat runs the Django examples (examples/django: the echo app and
# the chat) with Django's development server on 127.0.0.1:8000 and, next to
# it, the demo binary bridged to it (manage.py runrealtime): the chat page is
# at http://127.0.0.1:8080/. The chat's SQLite file is
# examples/django/chat.sqlite3 (CHAT_DB), migrated first.
django-chat: build client-script
	cd examples/django && $(PYTHON) manage.py migrate --no-input -v 0 && $(PYTHON) manage.py runrealtime 127.0.0.1:8000

# demo runs the whole cluster in one process (embedded Redis, a gateway, the
# echo and chat workers): the chat page is at http://localhost:8000/.
# DEMO_ADDR=localhost:8001 make demo listens elsewhere (any flag as DEMO_<FLAG>).
demo: client-script
	$(GO) run ./cmd/demo

# client-script installs socket.io-client 0.9.16 (and the other Node test
# dependencies) from npm; the demo serves its dist/socket.io.js.
client-script: test-deps

# test-deps installs the Node test dependencies from the committed lock file.
test-deps:
	cd test && npm ci --no-audit --no-fund

# fmt-check fails when a Go file (of either module) is not gofmt-formatted.
fmt-check:
	@unformatted="$$(gofmt -l .)"; if [ -n "$$unformatted" ]; then echo "gofmt needed:" $$unformatted; exit 1; fi

# staticcheck runs honnef.co/go/tools' staticcheck over both modules
# (STATICCHECK_VERSION, the version .ci/run installs and the README names;
# it supports Go 1.26), found on PATH or in $(go env GOPATH)/bin. Missing,
# it is skipped with a note, except in CI (CI set), where that is a failure.
STATICCHECK_VERSION := v0.8.2
STATICCHECK ?= $(shell command -v staticcheck || ls "$$($(GO) env GOPATH)/bin/staticcheck" 2>/dev/null)
staticcheck:
	@if [ -n "$(STATICCHECK)" ]; then echo "staticcheck $(PKGS) (and in $(TOOLS)/)"; "$(STATICCHECK)" $(PKGS) && cd $(TOOLS) && "$(STATICCHECK)" $(PKGS); \
	elif [ -n "$$CI" ]; then echo "staticcheck not installed (CI is set, so this fails): go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)"; exit 1; \
	else echo "staticcheck not installed: skipped (go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION))"; fi

lint: fmt-check
	$(GO) vet $(PKGS)
	$(GO) -C $(TOOLS) vet $(PKGS)
	$(MAKE) --no-print-directory staticcheck

# fuzz runs each fuzz target briefly (FUZZTIME, default 20s): the
# protocol's and the bus's decoders, and the gateway's HTTP surface
# (FuzzHTTP: raw requests to an in-process gateway on a redis-server the
# test starts).
FUZZTIME ?= 20s
FUZZPKGS := ./pkg/protocol ./pkg/bus ./pkg/gateway
fuzz:
	for pkg in $(FUZZPKGS); do \
		for f in $$($(GO) test -list 'Fuzz.*' $$pkg | grep ^Fuzz); do \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

# cover measures statement coverage of the whole suite, including the
# gateway and worker processes the integration tests start (built with
# -cover; they write their counters on a clean exit, so the harness stops
# them with SIGTERM first, which makes this run slower than make test),
# and the tools module's unit tests. It prints the percentages per package
# and writes cover/cover.out and cover/cover.html (rendered from tools/,
# whose build sees the packages of both modules).
COVERDIR := $(CURDIR)/cover
cover: test-deps
	rm -rf $(COVERDIR) && mkdir -p $(COVERDIR)/unit $(COVERDIR)/procs
	$(GO) test -count=1 -cover -coverpkg=github.com/realtime/realtime/... ./pkg/... ./internal/... ./cmd/... -args -test.gocoverdir=$(COVERDIR)/unit
	$(GO) -C $(TOOLS) test -count=1 -cover -coverpkg=github.com/realtime/realtime/... ./... -args -test.gocoverdir=$(COVERDIR)/unit
	GOCOVERDIR=$(COVERDIR)/procs $(GO) test -count=1 -timeout 30m ./test/...
	$(GO) tool covdata percent -i=$(COVERDIR)/unit,$(COVERDIR)/procs
	$(GO) tool covdata textfmt -i=$(COVERDIR)/unit,$(COVERDIR)/procs -o $(COVERDIR)/cover.out
	$(GO) -C $(TOOLS) tool cover -html=$(COVERDIR)/cover.out -o $(COVERDIR)/cover.html

# bench runs the benchmark against the reference socket.io 0.9.19 (own Redis,
# a gateway, an echo worker, the Node server; 7 to 10 minutes on 2 cores)
# and the codec micro-benchmarks, and writes BENCHMARKS.md and bench/ratios.svg.
# BENCHFLAGS passes flags to benchrun (tools/cmd/benchrun, built into bin/ by
# make build), e.g. BENCHFLAGS=-quick for a one-minute smoke run.
bench: build test-deps
	./$(BIN)/benchrun $(BENCHFLAGS)

clean:
	rm -rf $(BIN)
