#!/usr/bin/env bash
# Python tools the API tests run (idempotent): a venv in .cache/venv-api with the hash-pinned
# packages of scripts/requirements-api.txt. Rebuilt only when that file changes.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.cache/venv-api
stamp="$venv/requirements.sha256"
want=$(sha256sum scripts/requirements-api.txt | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "setup: installing the API test tools into $venv"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check --only-binary=:all: --require-hashes \
  -r scripts/requirements-api.txt
echo "$want" > "$stamp"
