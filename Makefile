# xmppgw — `make run` starts a development setup, `make test` is CI.
# Go at /usr/local/go is used when go is not in PATH.
export PATH := $(PATH):/usr/local/go/bin

GO        ?= go
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
FUZZTIME  ?= 15s
# Unit packages (no servers) and the integration tests (real Prosody and
# RabbitMQ). The integration tests run after the unit tests, one package at a
# time: each Prosody takes a core while busy and CI has two.
UNIT_PKGS  = $(shell $(GO) list ./... | grep -v '/integration')
INTEG_PKGS = ./integration/...
GOFILES    = $(shell find . -name '*.go' -not -path './data/*' -not -path '*/testdata/*' -not -path './bin/*')

.PHONY: all run test setup vet fmt fmt-check unit integration build bench bench-e2e fuzz clean dev-prosody dev-stop

all: build

## run: a dev Prosody (127.0.0.1:5222, alice/alice; component gw.localhost:5347) and the gateway with configs/dev.yaml
run: setup dev-prosody
	$(GO) run -ldflags "$(LDFLAGS)" ./cmd/xmppgw run -c configs/dev.yaml

## test: everything CI checks: setup, vet, gofmt, unit and integration tests with -race
test: setup vet fmt-check unit integration

setup:
	@.ci/setup

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $(GOFILES)

fmt-check:
	@files=$$(gofmt -l $(GOFILES)); \
	if [ -n "$$files" ]; then echo "gofmt needed (run make fmt):"; echo "$$files"; exit 1; fi

unit:
	$(GO) test -race -count=1 -timeout 10m $(UNIT_PKGS)

integration:
	$(GO) test -race -count=1 -timeout 20m -p 1 $(INTEG_PKGS)

## build: one static binary (no cgo: Go's own DNS resolver)
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/xmppgw ./cmd/xmppgw

## bench: micro-benchmarks of the hot paths
bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./stanza/ ./component/ ./queue/ ./gateway/

## bench-e2e: end to end through a real Prosody and RabbitMQ, gateway vs the thinnest bridge (~5 min)
bench-e2e: setup
	$(GO) run ./integration/bench -n 100000 -runs 3

## fuzz: every Fuzz target for FUZZTIME (default 15s) each
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "fuzz $$pkg $$f"; \
			$(GO) test -run='^$$' -fuzz="^$$f\$$" -fuzztime=$(FUZZTIME) $$pkg; \
		done; \
	done

dev-prosody:
	@.ci/dev-prosody start

dev-stop:
	@.ci/dev-prosody stop

clean: dev-stop
	rm -rf bin data
