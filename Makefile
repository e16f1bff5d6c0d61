# The two commands a fresh machine needs:
#   make run   - provision runtime + models, then start the service on 127.0.0.1:8080
#   make test  - provision runtime + models, then build and run every test
.PHONY: setup run test bench fmt lint

setup:
	bash scripts/setup-build.sh
	python3 scripts/setup.py

run: setup
	cargo run --release -p wajah-server --

test: setup
	bash scripts/setup-browser.sh
	bash scripts/setup-api-tools.sh
	cargo test --workspace --locked

bench: setup
	cargo bench -p wajah-benches --bench wajah

fmt:
	cargo fmt --all

lint:
	cargo clippy --workspace --all-targets --locked -- -D warnings
