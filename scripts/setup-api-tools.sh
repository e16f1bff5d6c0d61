#!/usr/bin/env bash
# Python tools the API tests run (idempotent): a venv with the hash-pinned packages of
# scripts/requirements-api.txt, in .cache/venv-api-<first 12 hex of that file's sha256>.
# The name follows the file, so a changed file gets a venv of its own (work trees sharing .cache
# never rebuild each other's), and the tests find it the same way (server/tests/it/main.rs,
# `api_tool`). Prints the venv's path.
set -euo pipefail
cd "$(dirname "$0")/.."
want=$(sha256sum scripts/requirements-api.txt | cut -c1-12)
venv=.cache/venv-api-$want
if [ ! -f "$venv/installed" ]; then
  echo "setup: installing the API test tools into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir --only-binary=:all: \
    --require-hashes -r scripts/requirements-api.txt
  touch "$venv/installed"
fi
echo "$venv"
