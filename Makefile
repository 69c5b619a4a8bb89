# Kan developer entry points. Every target is idempotent and installs what it needs.
SHELL := /bin/bash
export CARGO_TARGET_DIR ?= $(HOME)/.cache/kan-target
TOOLS := $(CURDIR)/.tools
export PATH := $(TOOLS)/bin:$(PATH)
KAN := $(CARGO_TARGET_DIR)/debug/kan

.PHONY: demo test tools build crds check-crds lint data clean-tools

## The platform: build, then (once the serving crates land) the local demo.
demo: tools build
	./scripts/demo.sh

## Every test: formatting, lints, unit/integration tests, CRD drift and CRD parsing with kubectl/helm.
test: tools
	./scripts/test.sh

tools:
	./scripts/install-tools.sh

build:
	cargo build --locked -p kan

## Regenerate crds/ from the Rust types.
crds: build
	$(KAN) crd --out-dir crds
	cp crds/*.yaml charts/kan/crds/

lint:
	cargo fmt --all -- --check
	cargo clippy --locked --workspace --all-targets -- -D warnings

## MovieLens-100K from the recbole wheel (never committed: its licence forbids redistribution).
data:
	./scripts/fetch-ml100k.sh data
