# Streamer — every command a user or CI runs.
SHELL := /bin/bash
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
GO ?= go

.PHONY: help deps dev token test test-reliability bench synth diff deploy fmt vet

help: ## List the targets.
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

deps: ## Install everything the tests and the local runtime need.
	./scripts/deps.sh

dev: deps ## Run the whole system locally (DynamoDB Local, gateway, router, processor).
	$(GO) run ./local/cmd/streamer-dev

token: ## Mint a development token: make token TENANT=acme USER=alice
	@$(GO) run ./local/cmd/streamer-dev token -tenant "$(or $(TENANT),demo)" -user "$(or $(USER),dev)"

test: deps vet ## Run every test: unit, integration, infrastructure, end-to-end, browser, reliability at CI size.
	@set -o pipefail; STREAMER_RELIABILITY_REPORT=$(CURDIR)/.cache/RELIABILITY-ci.md \
	  $(GO) test -count=1 -timeout 60m ./... 2>&1 | tee $(CURDIR)/.cache/test.log || { \
	  echo; echo "== what failed (the whole output is in .cache/test.log) =="; \
	  grep -E -A 12 -e '--- FAIL|^panic:|^FAIL|test timed out' $(CURDIR)/.cache/test.log | tail -n 150; exit 1; }

test-reliability: deps ## Run the full reliability and security suite and rewrite RELIABILITY.md.
	STREAMER_RELIABILITY=full STREAMER_RELIABILITY_REPORT=$(CURDIR)/RELIABILITY.md $(GO) test -count=1 -timeout 85m -v ./test/reliability

bench: deps ## Run the benchmarks and print the figures.
	$(GO) test -run '^$$' -bench . -benchtime 2s -count 1 ./...

synth: deps ## Synthesize the CloudFormation template into cdk.out.
	npx cdk synth

diff: deps ## Show what a deploy would change.
	npx cdk diff

deploy: deps ## Deploy the stack to the current AWS account and region.
	npx cdk deploy

fmt: ## Format the Go code.
	gofmt -w $$(git ls-files '*.go')

vet: ## gofmt check and go vet.
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
