#!/bin/bash
# fuzz.sh: one target of `make fuzz`. It runs the go test -fuzz command it
# is given (the package directory last) and fails on a finding: a failing
# input written under testdata/fuzz, a panic, a t.Error, anything else
# that fails, but one thing.
#
# Go's fuzzing coordinator ends a run by a deadline of -fuzztime on its
# context, and takes that deadline for the normal end by comparing the
# context's error with that of a context derived from it, which the
# context package sets a moment later. When its goroutine wakes in that
# moment (rare; more likely on a loaded machine), the run fails at the
# -fuzztime boundary with the deadline as its only word:
#
#     --- FAIL: FuzzParseMarker (10.02s)
#         context deadline exceeded
#     FAIL
#
# having found nothing and written no input. That is the coordinator's own
# deadline, not a finding: it is said so, and the target passes. The
# deadline can come from nowhere else (a target's own t.Error carries its
# file:line, a crash writes its input first, a panic prints panic:).
set -euo pipefail

pkg=${*: -1}
log=$(mktemp)
# The files under testdata/fuzz before the run: a file that is not among
# them afterwards is a finding. (Not by mtime: a file written in the same
# clock tick as a stamp is not newer than it.)
before=$(mktemp)
trap 'rm -f "$log" "$before"' EXIT
corpus() { { find "$pkg" -path '*/testdata/fuzz/*' -type f 2>/dev/null || true; } | LC_ALL=C sort; }
corpus >"$before"

status=0
"$@" 2>&1 | tee "$log" || status=$?
[ "$status" = 0 ] && exit 0

# What the target said between its --- FAIL line and go test's FAIL.
said=$(sed -n '/^--- FAIL: /,/^FAIL$/p' "$log" | sed '1d;$d')
target=$(sed -n 's/^--- FAIL: \(Fuzz[A-Za-z0-9_]*\) .*/\1/p' "$log" | head -1)
written=$(corpus | LC_ALL=C comm -13 "$before" - | head -1)
if [ -n "$target" ] && [ "$said" = "    context deadline exceeded" ] && [ -z "$written" ] &&
   ! grep -q -e 'Failing input written to' -e '^panic: ' "$log"; then
  echo "fuzz: $target: not a finding: the run ended on the fuzzing coordinator's own -fuzztime deadline" \
       "(a bare \"context deadline exceeded\", no failing input written); counted as passed"
  exit 0
fi
exit "$status"
