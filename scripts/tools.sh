#!/usr/bin/env bash
# Builds everything trueline's tests and demo need into .tools/, from the Go
# module proxy, pinned, and caches it: a tool whose stamp matches is not rebuilt.
#
#   .tools/bin/{tofu,terraform,versitygw,golangci-lint,trueline}
#   .tools/mirror/    filesystem provider mirror (sandbox and time providers)
#   .tools/terraformrc CLI config: the mirror only, a shared plugin cache
#
# Usage: scripts/tools.sh [--check]   (--check: fail unless every tool is present)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
TOOLS=$ROOT/.tools
BIN=$TOOLS/bin
SRC=$TOOLS/src
MIRROR=$TOOLS/mirror

TOFU_VERSION=1.10.10
TERRAFORM_VERSION=1.5.7
VERSITYGW_VERSION=1.8.0
TIME_PROVIDER_VERSION=0.14.2
GOLANGCI_LINT_VERSION=2.15.0
GITEA_VERSION=1.26.0
SANDBOX_VERSION=0.1.0

GO=${GO:-go}
PLATFORM=$($GO env GOOS)_$($GO env GOARCH)
GOVERSION=$($GO env GOVERSION)
mkdir -p "$BIN" "$SRC" "$MIRROR" "$TOOLS/plugin-cache"

step() { printf '==> %s\n' "$*" >&2; }

# fresh BINARY KEY: the binary exists and was built for KEY.
fresh() { [ -x "$1" ] && [ "$(cat "$1.stamp" 2>/dev/null)" = "$2" ]; }
stamp() { printf '%s' "$2" >"$1.stamp"; }

if [ "${1:-}" = "--check" ]; then
	missing=0
	for t in tofu terraform versitygw golangci-lint terraform-provider-sandbox gitea; do
		[ -x "$BIN/$t" ] || { echo "missing tool: $BIN/$t (run: make tools)" >&2; missing=1; }
	done
	[ -f "$TOOLS/terraformrc" ] || { echo "missing $TOOLS/terraformrc (run: make tools)" >&2; missing=1; }
	command -v chromium >/dev/null 2>&1 || { echo "missing chromium (run: make tools, as root, or apt-get install chromium)" >&2; missing=1; }
	exit $missing
fi

# module_dir MODULE@VERSION: download a module and print a writable copy's path.
# Modules with replace directives refuse `go install`; they build inside a copy.
module_dir() {
	local mod=$1 dest=$SRC/${1//\//_}
	if [ ! -f "$dest/.complete" ]; then
		local dir
		dir=$($GO mod download -json "$mod" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
		[ -n "$dir" ] || { echo "cannot download $mod" >&2; exit 1; }
		rm -rf "$dest"
		cp -r "$dir" "$dest"
		chmod -R u+w "$dest"
		touch "$dest/.complete"
	fi
	printf '%s' "$dest"
}

# OpenTofu: its go.mod has a replace directive, so build inside the module.
key="tofu $TOFU_VERSION $GOVERSION"
if fresh "$BIN/tofu" "$key"; then
	step "tofu $TOFU_VERSION: cached"
else
	step "tofu $TOFU_VERSION: building from source (about 5 minutes on 2 cores)"
	dir=$(module_dir "github.com/opentofu/opentofu@v$TOFU_VERSION")
	(cd "$dir" && $GO build -trimpath -ldflags "-s -w -X github.com/opentofu/opentofu/version.dev=no" -o "$BIN/tofu" ./cmd/tofu)
	stamp "$BIN/tofu" "$key"
fi

# Gitea, a real forge for pull request tests: also a replace directive, and
# its sqlite driver needs cgo and build tags. Its options/locale must be
# found at start: tests point STATIC_ROOT_PATH at the module copy.
key="gitea $GITEA_VERSION $GOVERSION"
if fresh "$BIN/gitea" "$key"; then
	step "gitea $GITEA_VERSION: cached"
else
	step "gitea $GITEA_VERSION: building from source (about 5 minutes on 2 cores)"
	dir=$(module_dir "code.gitea.io/gitea@v$GITEA_VERSION")
	(cd "$dir" && CGO_ENABLED=1 $GO build -trimpath -tags "sqlite sqlite_unlock_notify" -ldflags "-s -w" -o "$BIN/gitea" .)
	ln -sfn "$dir" "$TOOLS/gitea-root"
	stamp "$BIN/gitea" "$key"
fi

# Chromium renders the HTML report in a test: Debian's package.
if command -v chromium >/dev/null 2>&1; then
	step "chromium: $(command -v chromium)"
elif command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
	step "chromium: installing Debian's package"
	apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
	echo "chromium is missing and cannot be installed here: install Debian's chromium (apt-get install chromium) as root" >&2
	exit 1
fi

# go_install NAME MODULE/PATH VERSION: go install a pinned command into .tools/bin.
go_install() {
	local name=$1 pkg=$2 version=$3 key="$1 $3 $GOVERSION"
	if fresh "$BIN/$name" "$key"; then
		step "$name $version: cached"
		return
	fi
	step "$name $version: building"
	GOBIN=$BIN $GO install -trimpath -ldflags "-s -w" "$pkg@v$version"
	stamp "$BIN/$name" "$key"
}

go_install terraform github.com/hashicorp/terraform "$TERRAFORM_VERSION"
go_install versitygw github.com/versity/versitygw/cmd/versitygw "$VERSITYGW_VERSION"
go_install terraform-provider-time github.com/hashicorp/terraform-provider-time "$TIME_PROVIDER_VERSION"
go_install golangci-lint github.com/golangci/golangci-lint/v2/cmd/golangci-lint "$GOLANGCI_LINT_VERSION"

# The project's own sandbox provider: rebuilt when its sources change.
srchash=$(cat go.sum sandbox/*.go cmd/terraform-provider-sandbox/*.go | sha256sum | cut -c1-16)
key="sandbox $SANDBOX_VERSION $srchash $GOVERSION"
if fresh "$BIN/terraform-provider-sandbox" "$key"; then
	step "sandbox provider: cached"
else
	step "sandbox provider: building"
	$GO build -trimpath -ldflags "-X main.version=$SANDBOX_VERSION" -o "$BIN/terraform-provider-sandbox" ./cmd/terraform-provider-sandbox
	stamp "$BIN/terraform-provider-sandbox" "$key"
fi

# mirror BINARY NAMESPACE TYPE VERSION: install into the unpacked mirror layout
# under both registries, so `trueline/sandbox` resolves for terraform and tofu.
mirror() {
	local bin=$1 ns=$2 typ=$3 version=$4 host dir
	for host in registry.terraform.io registry.opentofu.org; do
		dir=$MIRROR/$host/$ns/$typ/$version/$PLATFORM
		if ! cmp -s "$bin" "$dir/terraform-provider-${typ}_v$version"; then
			mkdir -p "$dir"
			rm -f "$dir"/terraform-provider-*
			cp "$bin" "$dir/terraform-provider-${typ}_v$version"
		fi
	done
}
step "provider mirror: $MIRROR"
mirror "$BIN/terraform-provider-sandbox" trueline sandbox "$SANDBOX_VERSION"
mirror "$BIN/terraform-provider-time" hashicorp time "$TIME_PROVIDER_VERSION"

# A plugin cache entry built from an older sandbox binary would shadow the new
# one, so drop cached sandbox providers whose binary differs from the mirror.
for cached in "$TOOLS"/plugin-cache/*/trueline/sandbox/*/*/terraform-provider-sandbox_v*; do
	[ -e "$cached" ] || continue
	cmp -s "$cached" "$BIN/terraform-provider-sandbox" || rm -rf "$(dirname "$cached")"
done

cat >"$TOOLS/terraformrc.tmp" <<RC
# Generated by scripts/tools.sh: providers come from the local mirror only.
provider_installation {
  filesystem_mirror {
    path    = "$MIRROR"
    include = ["registry.terraform.io/*/*", "registry.opentofu.org/*/*"]
  }
}
plugin_cache_dir = "$TOOLS/plugin-cache"
disable_checkpoint = true
RC
mv "$TOOLS/terraformrc.tmp" "$TOOLS/terraformrc"

# Read all of the output: head would close the pipe early (SIGPIPE under pipefail).
for t in tofu terraform; do
	TF_CLI_CONFIG_FILE=$TOOLS/terraformrc "$BIN/$t" version | sed -n 1p >&2
done
step "tools ready in $TOOLS (CLI config: $TOOLS/terraformrc)"
