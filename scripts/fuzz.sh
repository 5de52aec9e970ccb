#!/usr/bin/env bash
# Runs every Go fuzz target of the project (func FuzzX in a *_test.go file)
# for a bounded time each, one after another, and prints per target the
# executions and new interesting inputs go test reported.
#
#   FUZZTIME          time per target (default 30s)
#   FUZZPARALLEL      fuzzing workers per target (default 1: the targets run
#                     one after another on machines shared with builds)
#   FUZZMINIMIZETIME  how long to minimize each new interesting input or
#                     crash (default 100x, a hundred calls: go's default of
#                     60s, or even 2s per input of a 10 kB plan, eats a short
#                     run whole)
#
# A crash fails the run after all targets ran; go test writes the input to
# <package>/testdata/fuzz/<target>/, where it stays as a regression seed.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZTIME=${FUZZTIME:-30s}
FUZZPARALLEL=${FUZZPARALLEL:-1}
FUZZMINIMIZETIME=${FUZZMINIMIZETIME:-100x}
GO=${GO:-go}

# Every target in tracked or new (not ignored) test files: "./pkg FuzzName".
mapfile -t targets < <(
	git ls-files --cached --others --exclude-standard -- '*_test.go' | grep -v '/testdata/' |
		xargs grep -s -H -o '^func Fuzz[A-Za-z0-9_]*(' |
		sed -E 's#^(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\($#./\1 \2#' |
		sort -u
)
if [ ${#targets[@]} -eq 0 ]; then
	echo "fuzz: no fuzz targets found" >&2
	exit 1
fi

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
failed=0
summary=()
for t in "${targets[@]}"; do
	read -r pkg name <<<"$t"
	log="$logs/$(echo "$pkg.$name" | tr '/' '_').log"
	echo "== fuzz $pkg $name ($FUZZTIME)"
	status=ok
	if ! "$GO" test -run '^$' -fuzz "^$name\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$FUZZMINIMIZETIME" \
		-parallel "$FUZZPARALLEL" "$pkg" >"$log" 2>&1; then
		if grep -q 'context deadline exceeded' "$log" && ! grep -qE 'Failing input written|panic:|--- FAIL: .*\(.*\)$' <(grep -v 'context deadline exceeded' "$log" | grep -v -- "--- FAIL: $name "); then
			# go test's fuzzer reports the time limit itself as a failure
			# when it ends while a new input is minimized; no input failed.
			status=ok
		else
			status=FAIL
			failed=1
			cat "$log"
		fi
	fi
	# The last progress line has the totals:
	# fuzz: elapsed: 30s, execs: 104199 (3473/sec), new interesting: 13 (total: 21)
	line=$(grep -E '^fuzz: elapsed: .*execs: ' "$log" | tail -n 1 || true)
	execs=$(sed -nE 's/.*execs: ([0-9]+).*/\1/p' <<<"$line")
	news=$(sed -nE 's/.*new interesting: ([0-9]+).*/\1/p' <<<"$line")
	corpus=$(sed -nE 's/.*\(total: ([0-9]+)\).*/\1/p' <<<"$line")
	row=$(printf '%-12s %-14s %-5s %10s execs %5s new interesting %6s corpus' \
		"$pkg" "$name" "$status" "${execs:-?}" "${news:-?}" "${corpus:-?}")
	echo "$row"
	summary+=("$row")
done

echo "== fuzz summary ($FUZZTIME per target, $FUZZPARALLEL worker(s))"
printf '%s\n' "${summary[@]}"
exit $failed
