#!/usr/bin/env bash
# make demo: the whole story on this machine, with no flags and no network.
# A local Git repository of example stacks, the sandbox cloud, a SQLite
# ledger, and trueline serve: it applies the stacks, someone changes the
# console, trueline finds the drift, reverts it on one stack and proposes a
# pull request on the other.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEMO=$ROOT/.demo
export PATH=$ROOT/.tools/bin:$PATH
export TF_CLI_CONFIG_FILE=$ROOT/.tools/terraformrc
export SANDBOX_ROOT=$DEMO/cloud
export TRUELINE_API_TOKEN=demo-token
PORT=${DEMO_PORT:-8080}
export TRUELINE_SERVER=http://127.0.0.1:$PORT

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

say "A fresh Git repository of example stacks in $DEMO/repo"
rm -rf "$DEMO"
mkdir -p "$DEMO/repo" "$SANDBOX_ROOT/images"
cp -r examples/sandbox/. "$DEMO/repo/"
echo '{"id": "img-1"}' >"$SANDBOX_ROOT/images/base.json"
git -C "$DEMO/repo" init -q -b main
git -C "$DEMO/repo" add -A
git -C "$DEMO/repo" -c user.name=demo -c user.email=demo@example.invalid commit -qm "Example stacks"
find "$DEMO/repo" -name '*.tf' -o -name '*.hcl' | sed "s|$DEMO/repo/|  |" | sort

say "trueline serve, watching it (ledger: $DEMO/data/trueline.db, log: $DEMO/serve.log)"
trueline serve --repo "$DEMO/repo" --data-dir "$DEMO/data" --binary tofu --listen "127.0.0.1:$PORT" \
	--poll 2s --schedule-jitter 0s --log-level info >"$DEMO/serve.log" 2>&1 &
SERVE=$!
stop() {
	kill -INT "$SERVE" 2>/dev/null && wait "$SERVE" 2>/dev/null || true
}
trap stop EXIT

say "The first look: both stacks are code not yet applied (pending); the policies apply merged code"
trueline plan stacks/web --wait >/dev/null || true
trueline plan stacks/api --wait >/dev/null || true
trueline runs

say "The console change: someone resizes both autoscaling groups by hand (min 3→4, max 9→12)"
for name in web api; do
	obj=$SANDBOX_ROOT/sandbox_autoscaling_group/$name.json
	sed -i 's/"min_size": [0-9]*/"min_size": 4/; s/"max_size": [0-9]*/"max_size": 12/' "$obj"
	echo "  $name: $(grep -E '"(min|max)_size"' "$obj" | tr -d ' \n')"
done

say "stacks/web (policy guarded): the drift is found and the reviewed plan is applied"
trueline plan stacks/web --wait || true
echo "  web: $(grep -E '"(min|max)_size"' "$SANDBOX_ROOT/sandbox_autoscaling_group/web.json" | tr -d ' \n')"

say "stacks/api (policy review): the drift is found and goes to a pull request"
trueline plan stacks/api --wait || true
echo "  api: $(grep -E '"(min|max)_size"' "$SANDBOX_ROOT/sandbox_autoscaling_group/api.json" | tr -d ' \n') (left for review)"

say "No forge is configured here, so trueline pushed the remediation branch; this is the pull request it would open"
branch=trueline/stacks/api/default
git -C "$DEMO/repo" log --oneline -1 "$branch"
git -C "$DEMO/repo" show "$branch:.trueline/drift/stacks/api/default.md" | sed -n '1,/<details>/p' | sed '$d'

say "A reviewer merges the branch: that is the approval, and trueline applies Git's values"
git -C "$DEMO/repo" -c user.name=reviewer -c user.email=reviewer@example.invalid merge -q --no-edit "$branch"
api=$SANDBOX_ROOT/sandbox_autoscaling_group/api.json
for _ in $(seq 1 120); do
	grep -q '"min_size": 2' "$api" && break
	sleep 0.5
done
trueline runs --limit 1
echo "  api: $(grep -E '"(min|max)_size"' "$api" | tr -d ' \n')"

say "Every run is in the ledger (trueline runs; $TRUELINE_SERVER/api/v1/runs)"
trueline runs
echo
echo "Dashboard: $TRUELINE_SERVER/   (sign in with the token $TRUELINE_API_TOKEN to plan or approve)"
echo "Report:    $TRUELINE_SERVER/report    Metrics: $TRUELINE_SERVER/metrics"
if [ -t 0 ] && [ -z "${CI:-}" ]; then
	echo "trueline keeps watching $DEMO/repo (stacks/web every minute). Press Ctrl-C to stop."
	wait "$SERVE" || true
fi
