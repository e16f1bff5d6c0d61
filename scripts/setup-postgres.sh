#!/usr/bin/env bash
# PostgreSQL server binaries for the store tests, from Debian's `postgresql` package (idempotent).
# The tests start their own server in a temporary directory (store-pg/src/testing.rs); the
# package's own cluster service is not used.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "setup: installing postgresql (Debian package)"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
