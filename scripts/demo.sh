#!/usr/bin/env bash
# make demo: the whole story on this machine, with no flags and no network.
# A local Git repository of example stacks, the sandbox cloud, and trueline:
# apply, make a console change, watch trueline find it, fix it, check again.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEMO=$ROOT/.demo
BIN=$ROOT/.tools/bin
export PATH=$BIN:$PATH
export TF_CLI_CONFIG_FILE=$ROOT/.tools/terraformrc
export SANDBOX_ROOT=$DEMO/cloud
export TRUELINE_WORK_DIR=$DEMO/work TRUELINE_PLUGIN_CACHE=$ROOT/.tools/plugin-cache
export TRUELINE_BINARY=tofu NO_COLOR=${NO_COLOR:-}

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

say "A fresh Git repository of example stacks in $DEMO/repo"
rm -rf "$DEMO"
mkdir -p "$DEMO/repo" "$SANDBOX_ROOT/images"
cp -r examples/sandbox/. "$DEMO/repo/"
echo '{"id": "img-1"}' >"$SANDBOX_ROOT/images/base.json"
git -C "$DEMO/repo" init -q -b main
git -C "$DEMO/repo" add -A
git -C "$DEMO/repo" -c user.name=demo -c user.email=demo@example.invalid commit -qm "Example stacks"

say "Applying every stack into the sandbox cloud ($SANDBOX_ROOT)"
for stack in "$DEMO"/repo/stacks/*/; do
	(cd "$stack" && tofu init -input=false >/dev/null && tofu apply -input=false -auto-approve >/dev/null)
	echo "applied ${stack#"$DEMO/repo/"}"
done

say "trueline check: everything is in sync"
trueline check --repo "$DEMO/repo"

say "The console change: someone resizes the web autoscaling group by hand (min 3→4, max 9→12)"
obj=$SANDBOX_ROOT/sandbox_autoscaling_group/web.json
sed -i 's/"min_size": 3/"min_size": 4/; s/"max_size": 9/"max_size": 12/' "$obj"
grep -E '"(min|max)_size"' "$obj"

say "trueline check: the drift is found, attribute by attribute (exit code 2)"
set +e
trueline check --repo "$DEMO/repo"
code=$?
set -e
[ "$code" = 2 ] || { echo "expected exit code 2, got $code" >&2; exit 1; }

say "Remediation: apply Git's configuration again"
(cd "$DEMO/repo/stacks/web" && tofu apply -input=false -auto-approve >/dev/null)
grep -E '"(min|max)_size"' "$obj"

say "trueline check: converged"
trueline check --repo "$DEMO/repo"
say "Done. The demo lives in $DEMO; run 'make demo' again to start over."
