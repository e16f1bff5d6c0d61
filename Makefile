# The two commands a fresh machine needs:
#   make run   - provision runtime + models, then start the service on 127.0.0.1:8080
#   make test  - provision runtime + models, then build and run every test
.PHONY: setup run test bench fmt lint fuzz

setup:
	bash scripts/setup-build.sh
	python3 scripts/setup.py

run: setup
	cargo run --release -p wajah-server --

test: setup
	bash scripts/setup-browser.sh
	bash scripts/setup-api-tools.sh
	bash scripts/setup-postgres.sh
	cargo test --workspace --locked

bench: setup
	cargo bench -p wajah-benches --bench wajah

fmt:
	cargo fmt --all

lint:
	cargo clippy --workspace --all-targets --locked -- -D warnings

# Each fuzz target briefly (FUZZ_SECS each) over its seeds and regressions; nightly, cargo-fuzz.
# Not part of `make test`: the build and CI stay on stable.
FUZZ_TARGETS := decode nik config request_json index_file sealed_row
FUZZ_SECS ?= 30

fuzz:
	command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	bash fuzz/seed.sh
	cargo +nightly fuzz build -O -a
	for t in $(FUZZ_TARGETS); do bash fuzz/run.sh $$t -max_total_time=$(FUZZ_SECS) || exit 1; done
