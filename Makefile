# modelfleet — the two commands a newcomer needs are `make run` and `make test`.
GO              ?= go
TEMPORAL_VERSION := v1.5.1
TOOLS           := $(CURDIR)/bin/tools
TEMPORAL        := $(TOOLS)/temporal
export CGO_ENABLED ?= 0

.PHONY: all build tools run test test-unit test-e2e fuzz fuzz-campaign lint clean screenshots workload-module

all: build

## build: the modelfleet binary (static, no cgo) into bin/
build:
	$(GO) build -o bin/modelfleet ./cmd/modelfleet

## workload-module: the bearing-failure workload as a WebAssembly module (ABI v1), from source, into bin/
## (modelfleet workload build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared, then checks the ABI and prints the digest)
workload-module: build
	bin/modelfleet workload build ./examples/bearing-failure/workload/module -o bin/bearing-failure-line.wasm --go $(GO)

## tools: the pinned Temporal CLI (dev server + UI), built once from the Go module proxy
tools: $(TEMPORAL)
$(TEMPORAL):
	@echo "building Temporal CLI $(TEMPORAL_VERSION) from the Go module proxy (once, a few minutes)..."
	GOBIN=$(TOOLS) $(GO) install github.com/temporalio/cli/cmd/temporal@$(TEMPORAL_VERSION)

## run: the whole embedded stack in the foreground (Ctrl-C stops it; state survives in $MODELFLEET_DATA_DIR)
run: build tools
	bin/modelfleet dev

## test: vet, format check, unit tests and the end-to-end test against a real dev server
test: build tools lint
	$(GO) test -count=1 -timeout 10m ./...
	$(MAKE) test-deploy TEST_DEPLOY_FLAGS=-short

## test-unit: everything but the end-to-end test (no dev server needed)
test-unit:
	$(GO) test -count=1 -short ./...

lint:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## fuzz: run every fuzz target briefly (FUZZTIME=30s each by default;
## FUZZTIME=1000000x runs each to 10^6 executions, as the campaign does)
FUZZTIME ?= 30s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -timeout 0 $$pkg || exit 1; \
	  done; \
	done

## fuzz-campaign: every fuzz target to 10^6 executions (CAMPAIGN_FUZZTIME), figures into docs/fuzzing.md
CAMPAIGN_FUZZTIME ?= 1000000x
fuzz-campaign:
	FUZZTIME=$(CAMPAIGN_FUZZTIME) .ci/fuzz-campaign

## screenshots: the dashboard's screenshots in docs/img (the browser test, headless Chromium)
screenshots: build tools
	MODELFLEET_SCREENSHOTS=1 $(GO) test -count=1 -run TestDashboardInABrowser ./test

clean:
	rm -rf bin/modelfleet

# --- deps: what the model runtime's real-library tests need (inference/; docs/models.md) ---
# Debian packages. The tests skip without them, naming the package, and fail
# instead when MODELFLEET_REQUIRE_DEPS=1 (as .ci/run sets). postgresql: the
# PostgreSQL store's tests start a real server (internal/pgtest; as root they
# run it as the package's `postgres` user). chromium: the dashboard's browser
# tests (test/ui_test.go) drive it headless.
TEST_DEB_PACKAGES := python3-xgboost python3-sklearn python3-onnx libonnx-testdata postgresql chromium
SUDO ?= $(shell [ "$$(id -u)" = 0 ] || echo sudo)
.PHONY: deps
## deps: install the missing packages of TEST_DEB_PACKAGES (apt-get update once, non-interactive)
deps:
	@missing=$$(for p in $(TEST_DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing" $$missing; \
	  $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi
# --- end deps ---

# Benchmarks: each bench/<name>.mk defines a bench-<name> target.
-include $(wildcard bench/*.mk)
-include deploy/deploy.mk
