# trueline: the two commands are `make demo` and `make test`; both build what
# they need with `make tools` (cached in .tools/).

GO        ?= go
TOOLS     := $(CURDIR)/.tools
BIN       := $(TOOLS)/bin
export PATH := $(BIN):$(PATH)

.PHONY: all build tools test test-short lint fmt fuzz demo bench testdata clean

all: build

build:
	$(GO) build -o $(BIN)/trueline ./cmd/trueline

tools:
	@scripts/tools.sh

# Integration tests run real tofu and terraform against the sandbox provider.
test: tools
	@scripts/tools.sh --check
	$(GO) test -count=1 -timeout 30m ./...

lint: tools
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(BIN)/golangci-lint run ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

# Every fuzz target for FUZZTIME each; prints executions and new inputs per target.
FUZZTIME ?= 30s
fuzz:
	@FUZZTIME=$(FUZZTIME) GO=$(GO) scripts/fuzz.sh

demo: tools build
	@scripts/demo.sh

bench: tools build
	@$(GO) run ./internal/bench $(BENCH_FLAGS)

# Regenerates the plan JSON fixtures of the drift package with real tofu/terraform.
testdata: tools
	$(GO) generate ./drift/...

clean:
	rm -rf $(TOOLS)/bin/trueline
