#!/usr/bin/env bash
# Builds everything trueline's tests and demo need into .tools/, from the Go
# module proxy, pinned, and caches it: a tool whose stamp matches is not rebuilt.
#
#   .tools/versions/<binary>/<version>/<binary>  every Terraform and OpenTofu
#                     version, side by side (runner.Toolchain picks among them)
#   .tools/bin/{tofu,terraform}  symlinks to the default versions
#   .tools/bin/{versitygw,golangci-lint,gitea,...}
#   .tools/mirror/    filesystem provider mirror (sandbox and time providers)
#   .tools/terraformrc CLI config: the mirror only, a shared plugin cache
#
# Usage: scripts/tools.sh [--check]   (--check: fail unless every tool is present)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
TOOLS=$ROOT/.tools
BIN=$TOOLS/bin
VERSIONS=$TOOLS/versions
SRC=$TOOLS/src
MIRROR=$TOOLS/mirror

TOFU_VERSION=1.10.10
# Terraform: the default, and the older release kept for compatibility tests.
TERRAFORM_VERSION=1.13.3
TERRAFORM_NESTED=v0.0.0-20250409131005-35645b8fca68 # see terraform_nested
TERRAFORM_COMPAT_VERSION=1.5.7
VERSITYGW_VERSION=1.8.0
TIME_PROVIDER_VERSION=0.14.2
GOLANGCI_LINT_VERSION=2.15.0
GITEA_VERSION=1.26.0
SANDBOX_VERSION=0.1.0

GO=${GO:-go}
# `version` would otherwise ask HashiCorp for news and warn of a missing
# ~/.terraformrc before saying its version.
export CHECKPOINT_DISABLE=1
PLATFORM=$($GO env GOOS)_$($GO env GOARCH)
GOVERSION=$($GO env GOVERSION)
mkdir -p "$BIN" "$VERSIONS" "$SRC" "$MIRROR" "$TOOLS/plugin-cache"

step() { printf '==> %s\n' "$*" >&2; }

# fresh BINARY KEY: the binary exists and was built for KEY.
fresh() { [ -x "$1" ] && [ "$(cat "$1.stamp" 2>/dev/null)" = "$2" ]; }
stamp() { printf '%s' "$2" >"$1.stamp"; }

# versioned NAME VERSION: where that version of terraform or tofu lives.
versioned() { printf '%s' "$VERSIONS/$1/$2/$1"; }

# pg_initdb: Debian's initdb (the ledger's PostgreSQL tests run a cluster
# with it), on PATH or in /usr/lib/postgresql/<version>/bin; empty if none.
pg_initdb() {
	command -v initdb 2>/dev/null || ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1
}

if [ "${1:-}" = "--check" ]; then
	missing=0
	for t in tofu terraform versitygw golangci-lint terraform-provider-sandbox gitea; do
		[ -x "$BIN/$t" ] || { echo "missing tool: $BIN/$t (run: make tools)" >&2; missing=1; }
	done
	for v in "tofu $TOFU_VERSION" "terraform $TERRAFORM_VERSION" "terraform $TERRAFORM_COMPAT_VERSION"; do
		set -- $v
		b=$(versioned "$1" "$2")
		if [ ! -x "$b" ]; then
			echo "missing tool: $b (run: make tools)" >&2; missing=1
		elif ! TF_CLI_CONFIG_FILE=/dev/null "$b" version 2>/dev/null | grep -qx "[[:alpha:]]* v$2"; then
			echo "$b does not say it is $1 v$2 (run: make tools)" >&2; missing=1
		fi
	done
	for v in "tofu $TOFU_VERSION" "terraform $TERRAFORM_VERSION"; do
		set -- $v
		[ "$(readlink "$BIN/$1")" = "../versions/$1/$2/$1" ] || { echo "$BIN/$1 is not a link to $1 $2 (run: make tools)" >&2; missing=1; }
	done
	[ -f "$TOOLS/terraformrc" ] || { echo "missing $TOOLS/terraformrc (run: make tools)" >&2; missing=1; }
	command -v chromium >/dev/null 2>&1 || { echo "missing chromium (run: make tools, as root, or apt-get install chromium)" >&2; missing=1; }
	[ -n "$(pg_initdb)" ] || { echo "missing PostgreSQL's initdb (run: make tools, as root, or apt-get install postgresql)" >&2; missing=1; }
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

# link NAME VERSION: point .tools/bin/NAME at that version, atomically (a
# rename), so tests running meanwhile see the old binary or the new one.
link() {
	ln -sfn "../versions/$1/$2/$1" "$BIN/.$1.link"
	mv -Tf "$BIN/.$1.link" "$BIN/$1"
	rm -f "$BIN/$1.stamp"
}

# works NAME VERSION: the built binary runs and says it is that version.
works() {
	local out
	out=$(TF_CLI_CONFIG_FILE=/dev/null "$(versioned "$1" "$2")" version 2>&1) || { printf '%s\n' "$out" >&2; return 1; }
	printf '%s\n' "$out" | grep -qx "[[:alpha:]]* v$2" || { printf '%s version says:\n%s\n' "$1" "$out" >&2; return 1; }
}

# OpenTofu: its go.mod has a replace directive, so build inside the module.
out=$(versioned tofu "$TOFU_VERSION")
key="tofu $TOFU_VERSION $GOVERSION"
if fresh "$out" "$key"; then
	step "tofu $TOFU_VERSION: cached"
else
	mkdir -p "$(dirname "$out")"
	if [ ! -L "$BIN/tofu" ] && fresh "$BIN/tofu" "$key"; then
		step "tofu $TOFU_VERSION: moving the earlier build into $VERSIONS"
		cp -p "$BIN/tofu" "$out.tmp"
	else
		step "tofu $TOFU_VERSION: building from source (about 5 minutes on 2 cores)"
		dir=$(module_dir "github.com/opentofu/opentofu@v$TOFU_VERSION")
		(cd "$dir" && $GO build -trimpath -ldflags "-s -w -X github.com/opentofu/opentofu/version.dev=no" -o "$out.tmp" ./cmd/tofu)
	fi
	mv -f "$out.tmp" "$out"
	stamp "$out" "$key"
fi
works tofu "$TOFU_VERSION"
link tofu "$TOFU_VERSION"

# Terraform 1.13.3's go.mod replaces nested modules (the remote state
# backends and internal/legacy) with directories its module zip leaves out, and
# the module proxy holds them only at TERRAFORM_NESTED, an earlier commit of
# main, not at the release. So the build points those replaces at that
# version, and leaves out the OCI backend, which the proxy has at no version.
# Terraform's core is the release's; only these backends differ from it.
terraform_nested() {
	local dir=$1
	sed -i -E "s#^replace (github.com/hashicorp/terraform/internal/[^ ]+) => \./.*#replace \1 => \1 $TERRAFORM_NESTED#" "$dir/go.mod"
	sed -i '/remote-state\/oci/d' "$dir/go.mod" "$dir/internal/backend/init/init.go"
	sed -i '/backendOCI/d' "$dir/internal/backend/init/init.go"
}

# terraform_build VERSION: build Terraform VERSION into its versions directory.
terraform_build() {
	local version=$1 out key dir
	out=$(versioned terraform "$version")
	key="terraform $version $GOVERSION"
	[ "$version" = "$TERRAFORM_COMPAT_VERSION" ] || key="$key nested $TERRAFORM_NESTED"
	if fresh "$out" "$key"; then
		step "terraform $version: cached"
		return
	fi
	mkdir -p "$(dirname "$out")"
	if [ ! -L "$BIN/terraform" ] && fresh "$BIN/terraform" "$key"; then
		step "terraform $version: moving the earlier build into $VERSIONS"
		cp -p "$BIN/terraform" "$out.tmp"
	elif [ "$version" = "$TERRAFORM_COMPAT_VERSION" ]; then
		# 1.5.7 has no replace directives: go install, into a directory of
		# its own, then beside its final place like the others.
		step "terraform $version: building"
		GOBIN=$(dirname "$out")/.build $GO install -trimpath -ldflags "-s -w" "github.com/hashicorp/terraform@v$version"
		mv -f "$(dirname "$out")/.build/terraform" "$out.tmp"
		rmdir "$(dirname "$out")/.build"
	else
		step "terraform $version: building from source (about 10 minutes on 2 cores)"
		dir=$(module_dir "github.com/hashicorp/terraform@v$version")
		terraform_nested "$dir"
		# version.dev=no: without it `terraform version` says 1.13.3-dev.
		(cd "$dir" && $GO build -mod=mod -trimpath -ldflags "-s -w -X github.com/hashicorp/terraform/version.dev=no" -o "$out.tmp" .)
	fi
	mv -f "$out.tmp" "$out"
	stamp "$out" "$key"
}
terraform_build "$TERRAFORM_COMPAT_VERSION"
works terraform "$TERRAFORM_COMPAT_VERSION"
# The default moves to a new version only once that version works: tests
# running meanwhile keep the old one.
terraform_build "$TERRAFORM_VERSION"
works terraform "$TERRAFORM_VERSION"
link terraform "$TERRAFORM_VERSION"

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

# PostgreSQL: the ledger's tests run throwaway clusters (internal/pgtest)
# with Debian's initdb and postgres.
if [ -n "$(pg_initdb)" ]; then
	step "postgresql: $(pg_initdb)"
elif command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
	step "postgresql: installing Debian's package"
	# Tests make their own clusters: no "main" cluster on port 5432 for them to meet.
	if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
		mkdir -p /etc/postgresql-common
		echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
	fi
	apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
	[ -n "$(pg_initdb)" ] || { echo "postgresql installed, but no initdb in /usr/lib/postgresql/*/bin" >&2; exit 1; }
else
	echo "PostgreSQL is missing and cannot be installed here: install Debian's postgresql (apt-get install postgresql) as root" >&2
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

go_install versitygw github.com/versity/versitygw/cmd/versitygw "$VERSITYGW_VERSION"
go_install terraform-provider-time github.com/hashicorp/terraform-provider-time "$TIME_PROVIDER_VERSION"
go_install golangci-lint github.com/golangci/golangci-lint/v2/cmd/golangci-lint "$GOLANGCI_LINT_VERSION"

# The project's own sandbox provider: rebuilt when its sources change.
srchash=$(cat go.sum sandbox/*.go internal/ctxtime/*.go cmd/terraform-provider-sandbox/*.go | sha256sum | cut -c1-16)
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
for b in "$VERSIONS"/*/*/*; do
	case $b in *.stamp) continue ;; esac
	TF_CLI_CONFIG_FILE=$TOOLS/terraformrc "$b" version | sed -n 1p >&2
done
step "tools ready in $TOOLS (CLI config: $TOOLS/terraformrc)"
