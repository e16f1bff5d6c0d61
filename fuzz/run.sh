#!/usr/bin/env bash
# Runs one fuzz target over its seed corpus and its regressions, in one process (libFuzzer's default;
# -jobs/-fork would start children):
#   fuzz/run.sh TARGET [libFuzzer options...]     e.g. fuzz/run.sh nik -runs=10000000
# Build first: cargo +nightly fuzz build -O -a (release, with overflow checks and debug assertions).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
target=$1
shift
case $target in
    # Photos: up to 1 MB, and as much memory as the default decode limits may legitimately use.
    decode) limits=(-max_len=1048576 -rss_limit_mb=2048) ;;
    # Everything else is text or small files: no input should need 512 MB in one allocation.
    *) limits=(-max_len=65536 -rss_limit_mb=2048 -malloc_limit_mb=512) ;;
esac
mkdir -p "$here/corpus/$target" "$here/regressions/$target"
cd "$here/.."
exec cargo +nightly fuzz run -O -a "$target" "$here/corpus/$target" "$here/regressions/$target" -- \
    "${limits[@]}" -print_final_stats=1 "$@"
