#!/bin/bash
# unit.sh: `make unit`. The unit tests of every package but the VM
# scenarios, through go test -json so that tests/skips can list each
# skipped test with its reason: without -v a skipped test looks passed.
# It fails when a test fails; with LUOINIT_REQUIRE_TESTS=1 (CI) also when
# a test skips for a reason tests/skips/allow.go does not allow.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
# Built first: a summariser that does not build must not look like a test
# failure, nor eat go test's output.
"$GO" build -o "$bin/skips" ./tests/skips

ci=()
[ "${LUOINIT_REQUIRE_TESTS:-}" = 1 ] && ci=(-ci)
mapfile -t pkgs < <("$GO" list ./... | grep -v /tests/scenarios)
# pipefail: go test's status (a failure, a build error) counts as well as
# the summariser's.
"$GO" test -count=1 -json "${pkgs[@]}" | "$bin/skips" -module "$("$GO" list -m)" "${ci[@]}"
