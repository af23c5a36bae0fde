# xmppgw — `make run` starts a development setup, `make test` is CI.
# Go at /usr/local/go is used when go is not in PATH.
export PATH := $(PATH):/usr/local/go/bin

GO        ?= go
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
FUZZTIME  ?= 15s
# make test fuzzes every target for FUZZTIME_SHORT: a count of executions,
# not a duration. With a duration, go1.26's fuzzing coordinator can report
# its own deadline as a failure ("context deadline exceeded", no failing
# input) when a loaded machine leaves a worker mid-run at the end
# (go.dev/issue/75804, fixed in Go 1.27); a count has no deadline to race.
FUZZTIME_SHORT ?= 10000x
# Minimizing a new input is bounded in runs, not time: with the default (60 s)
# a slow target (FuzzLoadConfig) spends its whole -fuzztime minimizing, and
# a deadline that ends inside minimization fails the run.
FUZZMINIMIZE ?= 20x
# Packages with Fuzz targets (found by grep: no compile just to list them).
FUZZ_PKGS  = $(shell grep -rl --include='*_test.go' '^func Fuzz' . | xargs -rn1 dirname | sort -u)
# The integration tests write the tables they print (fault matrix, hostile
# input) here as Markdown too.
REPORTS   ?= $(CURDIR)/bin/reports
# Unit packages and the integration tests. Unit tests use fakes, except
# queue's, which dial the RabbitMQ at 127.0.0.1:5672, and component's
# TestProsody*, which start one private Prosody for the package. The
# integration tests (real Prosody, ejabberd and RabbitMQ) run after them,
# one package at a time: each Prosody takes a core while busy and CI has two.
UNIT_PKGS  = $(shell $(GO) list ./... | grep -v '/integration')
INTEG_PKGS = ./integration/...
GOFILES    = $(shell find . -name '*.go' -not -path './data/*' -not -path '*/testdata/*' -not -path './bin/*')

.PHONY: all run test setup vet fmt fmt-check unit integration faults build bench bench-e2e fuzz fuzz-short clean dev-prosody dev-stop deb docker

all: build

## run: a dev Prosody (127.0.0.1:5222, alice/alice; component gw.localhost:5347) and the gateway with configs/dev.yaml
run: setup dev-prosody
	$(GO) run -ldflags "$(LDFLAGS)" ./cmd/xmppgw run -c configs/dev.yaml

## test: everything CI checks: setup, vet, gofmt, unit tests, every fuzz target for FUZZTIME_SHORT, integration tests (with the fault matrix and the hostile-input table) with -race
test: setup vet fmt-check unit fuzz-short integration

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
	@rm -rf $(REPORTS); mkdir -p $(REPORTS)
	XMPPGW_TEST_REPORTS=$(REPORTS) $(GO) test -race -count=1 -timeout 20m -p 1 $(INTEG_PKGS); \
	rc=$$?; cat $(REPORTS)/*.md 2>/dev/null; exit $$rc

## faults: the fault matrix alone (real Prosody, a private RabbitMQ node; about 4 min), prints its table
faults: setup
	@rm -rf $(REPORTS); mkdir -p $(REPORTS)
	XMPPGW_TEST_REPORTS=$(REPORTS) $(GO) test -race -count=1 -timeout 15m -run '^TestFaultMatrix$$' ./integration/; \
	rc=$$?; cat $(REPORTS)/*.md 2>/dev/null; exit $$rc

## build: one static binary (no cgo: Go's own DNS resolver)
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/xmppgw ./cmd/xmppgw

# The Debian package. nfpm runs as a pinned tool (go run pkg@version): its
# own dependencies stay out of go.mod, and the Go module cache keeps the
# build. The Debian version sorts by commit time: 0.0~git<date>.<describe>.
NFPM_VERSION   ?= v2.45.2
NFPM           ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION)
DEB_VERSION    ?= $(shell git log -1 --format='0.0~git%cd' --date=format:%Y%m%d%H%M 2>/dev/null || echo 0.0~dev).$(subst -,+,$(VERSION))
DEB_ARCH       ?= $(shell $(GO) env GOARCH)
DEB_MAINTAINER ?= xmppgw maintainers <root@localhost>
DEB_BUILD      ?= $(CURDIR)/bin/deb
DEB_OUT        ?= $(CURDIR)/bin
DEB_FILE        = $(DEB_OUT)/xmppgw_$(DEB_VERSION)_$(DEB_ARCH).deb

## deb: bin/xmppgw_VERSION_ARCH.deb (nfpm; configs/deb/): binary, systemd unit, conffile /etc/xmppgw/xmppgw.yaml, user xmppgw
deb: build
	@mkdir -p $(DEB_BUILD) $(DEB_OUT)
	@rm -f $(DEB_OUT)/xmppgw_*.deb # one package in DEB_OUT: dpkg -i bin/xmppgw_*.deb
	@# The packaged unit: the binary in /usr/bin, the static user the
	@# package creates instead of a dynamic one.
	{ echo '# xmppgw.service of the xmppgw Debian package (made from configs/xmppgw.service).'; \
	  echo '# Config: /etc/xmppgw/xmppgw.yaml; secrets: /etc/xmppgw/env (0600 root). Local changes: systemctl edit xmppgw'; \
	  sed -e '1,/^\[Unit\]/{/^#/d}' -e 's|/usr/local/bin/xmppgw|/usr/bin/xmppgw|g' \
	      -e 's|^DynamicUser=yes$$|User=xmppgw\nGroup=xmppgw|' configs/xmppgw.service; } > $(DEB_BUILD)/xmppgw.service
	@grep -qx 'User=xmppgw' $(DEB_BUILD)/xmppgw.service && ! grep -q '/usr/local/bin' $(DEB_BUILD)/xmppgw.service || \
		{ echo "deb: configs/xmppgw.service changed: adapt the unit's rewrite in the Makefile"; exit 1; }
	DEB_VERSION='$(DEB_VERSION)' DEB_ARCH='$(DEB_ARCH)' DEB_MAINTAINER='$(DEB_MAINTAINER)' DEB_BUILD='$(DEB_BUILD)' \
		$(NFPM) package --packager deb --config configs/deb/nfpm.yaml --target $(DEB_FILE)
	@echo $(DEB_FILE)

# The container image (Dockerfile): FROM scratch, nothing pulled.
DOCKER       ?= docker
DOCKER_IMAGE ?= xmppgw
DOCKER_TAG   ?= $(VERSION)
DOCKER_CTX   ?= $(CURDIR)/bin/docker
CA_CERTS     ?= /etc/ssl/certs/ca-certificates.crt

## docker: the image xmppgw:VERSION (and :latest): the static binary, CA certificates, user xmppgw (10001)
docker: build
	rm -rf $(DOCKER_CTX) && mkdir -p $(DOCKER_CTX)/data
	cp bin/xmppgw $(DOCKER_CTX)/xmppgw
	cp configs/component.example.yaml $(DOCKER_CTX)/xmppgw.yaml
	cp $(CA_CERTS) $(DOCKER_CTX)/ca-certificates.crt
	printf 'xmppgw:x:10001:10001:xmppgw:/var/lib/xmppgw:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n' > $(DOCKER_CTX)/passwd
	printf 'xmppgw:x:10001:\nnogroup:x:65534:\n' > $(DOCKER_CTX)/group
	$(DOCKER) build -f Dockerfile -t $(DOCKER_IMAGE):$(DOCKER_TAG) -t $(DOCKER_IMAGE):latest $(DOCKER_CTX)

## bench: micro-benchmarks of the hot paths
bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./stanza/ ./component/ ./queue/ ./gateway/

## bench-e2e: end to end through a real Prosody and RabbitMQ, gateway vs the thinnest bridge (16-22 min, most of it the million-item backlog; see integration/bench/README.md)
bench-e2e: setup
	$(GO) run ./integration/bench -n 100000 -runs 3

## fuzz: every Fuzz target for FUZZTIME (default 15s) each (go test -fuzz takes one package and one target at a time)
fuzz:
	@set -e; for dir in $(FUZZ_PKGS); do \
		for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go | sed 's/^func //'); do \
			echo "fuzz $$dir $$f ($(FUZZTIME))"; \
			$(GO) test -run='^$$' -fuzz="^$$f\$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINIMIZE) $$dir; \
		done; \
	done

## fuzz-short: every Fuzz target for FUZZTIME_SHORT (default 10000 executions), as make test does
fuzz-short:
	@$(MAKE) --no-print-directory fuzz FUZZTIME=$(FUZZTIME_SHORT)

dev-prosody:
	@.ci/dev-prosody start

dev-stop:
	@.ci/dev-prosody stop

clean: dev-stop
	rm -rf bin data
