#!/usr/bin/env bash
# Installs the third-party MCP clients that tests/integration/real_clients.rs drives against pg-mcp:
#
#   .cache/clients/venv/        Python venv with the official MCP Python SDK (PyPI `mcp`) and
#                               kubernetes-validate (PyPI), which checks infra/kubernetes/
#   .cache/clients/node/        Node.js 22 from the npm registry (npm package `node`)
#   .cache/clients/inspector/   the MCP Inspector 2.x (npm `@modelcontextprotocol/inspector`)
#   .cache/clients/oidc/        the OpenID Provider of the OAuth tests (npm `oidc-provider`)
#   .cache/clients/bin/         python, node and mcp-inspector entry points for the tests
#   nginx                       Debian's package, only when no nginx is installed
#   pgbouncer                   Debian's package, only when no pgbouncer is installed
#
#   scripts/install-client-tools.sh
#
# Idempotent: each part is skipped when the pinned version is already in place, so a second
# run takes well under a second. Everything except nginx lives in the git-ignored .cache/.
# Set PG_MCP_CLIENTS_DIR to install somewhere else.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${PG_MCP_CLIENTS_DIR:-$ROOT/.cache/clients}"

# Pinned versions (bump together with a run of `scripts/test.sh real_clients::`).
PY_MCP_VERSION="2.3.0"
KUBERNETES_VALIDATE_VERSION="1.37.0"
NODE_VERSION="22.23.3"
INSPECTOR_VERSION="2.12.0"
OIDC_PROVIDER_VERSION="9.13.3"

log() { printf 'install-client-tools: %s\n' "$*" >&2; }
die() { printf 'install-client-tools: error: %s\n' "$*" >&2; exit 1; }

mkdir -p "$DIR/bin"
INSTALLED=()

# Download caches are only needed while installing; CI disks are small, so keep them temporary.
NPM_CACHE="$(mktemp -d)"
trap 'rm -rf "$NPM_CACHE"' EXIT
export npm_config_cache="$NPM_CACHE" PIP_NO_CACHE_DIR=1

# --- Python: venv + mcp ---------------------------------------------------------------------
VENV="$DIR/venv"
py_stamp="mcp==$PY_MCP_VERSION kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
py_ok() {
  [ "$(cat "$VENV/.pg-mcp-stamp" 2>/dev/null || true)" = "$py_stamp" ] && [ -x "$VENV/bin/python" ] \
    && compgen -G "$VENV/lib/python3*/site-packages/mcp-$PY_MCP_VERSION.dist-info" >/dev/null \
    && [ -x "$VENV/bin/kubernetes-validate" ]
}
if py_ok; then
  :
else
  PY=""
  for cand in python3.11 python3.12 python3.13 python3; do
    if command -v "$cand" >/dev/null 2>&1 \
      && "$cand" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
      PY="$(command -v "$cand")"; break
    fi
  done
  [ -n "$PY" ] || die "Python >= 3.10 with the venv module is needed for the MCP Python SDK"
  log "creating $VENV with $("$PY" --version 2>&1) and installing $py_stamp from PyPI"
  rm -rf "$VENV"
  "$PY" -m venv "$VENV" || die "python -m venv failed (on Debian: apt-get install python3-venv)"
  # shellcheck disable=SC2086 # two requirements, split on purpose
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check $py_stamp \
    || die "pip install $py_stamp failed"
  "$VENV/bin/python" -c 'import mcp.client.session, mcp.client.stdio, mcp.client.streamable_http' \
    || die "the mcp package does not import"
  echo "$py_stamp" >"$VENV/.pg-mcp-stamp"
  INSTALLED+=("python venv: $py_stamp ($("$VENV/bin/python" --version 2>&1))")
fi
# A wrapper, not a symlink: Python finds its venv next to the path it was started as.
printf '#!/bin/sh\nexec "%s" "$@"\n' "$VENV/bin/python" >"$DIR/bin/python"
chmod +x "$DIR/bin/python"

# --- Node 22 (the machine's node may be older; the Inspector needs >= 22.19) -----------------
NODE_PREFIX="$DIR/node"
NODE_BIN="$NODE_PREFIX/node_modules/node/bin/node"
if [ "$("$NODE_BIN" --version 2>/dev/null || true)" = "v$NODE_VERSION" ]; then
  :
else
  command -v npm >/dev/null 2>&1 || die "npm is needed to fetch Node $NODE_VERSION from the npm registry"
  log "installing node@$NODE_VERSION from the npm registry into $NODE_PREFIX"
  rm -rf "$NODE_PREFIX"
  mkdir -p "$NODE_PREFIX"
  npm install --prefix "$NODE_PREFIX" --no-audit --no-fund --loglevel=error "node@$NODE_VERSION" >&2 \
    || die "npm install node@$NODE_VERSION failed"
  [ "$("$NODE_BIN" --version 2>/dev/null || true)" = "v$NODE_VERSION" ] \
    || die "node@$NODE_VERSION did not provide $NODE_BIN"
  INSTALLED+=("node: v$NODE_VERSION (npm package node@$NODE_VERSION)")
fi
ln -sfn ../node/node_modules/node/bin/node "$DIR/bin/node"

# --- MCP Inspector 2.x, installed and run with that Node ------------------------------------
INSP_PREFIX="$DIR/inspector"
INSP_PKG="$INSP_PREFIX/node_modules/@modelcontextprotocol/inspector"
INSP_ENTRY="$INSP_PKG/clients/launcher/build/index.js"
insp_version() { sed -n 's/^  "version": "\(.*\)",$/\1/p' "$INSP_PKG/package.json" 2>/dev/null | head -1; }
if [ -f "$INSP_ENTRY" ] && [ "$(insp_version)" = "$INSPECTOR_VERSION" ]; then
  :
else
  log "installing @modelcontextprotocol/inspector@$INSPECTOR_VERSION into $INSP_PREFIX (with Node $NODE_VERSION)"
  rm -rf "$INSP_PREFIX"
  mkdir -p "$INSP_PREFIX"
  # npm's own shebang (`env node`) then runs on Node 22, and so do the package's install scripts.
  PATH="$NODE_PREFIX/node_modules/node/bin:$PATH" \
    npm install --prefix "$INSP_PREFIX" --no-audit --no-fund --loglevel=error \
    "@modelcontextprotocol/inspector@$INSPECTOR_VERSION" >&2 \
    || die "npm install @modelcontextprotocol/inspector@$INSPECTOR_VERSION failed"
  [ -f "$INSP_ENTRY" ] || die "the Inspector package has no CLI launcher at $INSP_ENTRY"
  [ "$(insp_version)" = "$INSPECTOR_VERSION" ] || die "the Inspector did not install as $INSPECTOR_VERSION"
  INSTALLED+=("mcp inspector: @modelcontextprotocol/inspector@$INSPECTOR_VERSION")
fi
if [ ! -x "$DIR/bin/mcp-inspector" ] || ! grep -qF "$INSP_ENTRY" "$DIR/bin/mcp-inspector"; then
  cat >"$DIR/bin/mcp-inspector" <<EOF
#!/bin/sh
# The MCP Inspector $INSPECTOR_VERSION on Node $NODE_VERSION (written by scripts/install-client-tools.sh).
exec "$NODE_BIN" "$INSP_ENTRY" "\$@"
EOF
  chmod +x "$DIR/bin/mcp-inspector"
  [ "$("$DIR/bin/mcp-inspector" --version 2>/dev/null || true)" = "$INSPECTOR_VERSION" ] \
    || die "mcp-inspector --version does not print $INSPECTOR_VERSION"
fi

# mcpdo, the Inspector's connection CLI (same package): completions, which --cli does not offer.
MCPDO_ENTRY="$INSP_PKG/clients/mcpdo/build/mcp-bin.js"
[ -f "$MCPDO_ENTRY" ] || die "the Inspector package has no mcpdo at $MCPDO_ENTRY"
if [ ! -x "$DIR/bin/mcpdo" ] || ! grep -qF "$MCPDO_ENTRY" "$DIR/bin/mcpdo"; then
  cat >"$DIR/bin/mcpdo" <<EOF
#!/bin/sh
# mcpdo of the MCP Inspector $INSPECTOR_VERSION on Node $NODE_VERSION (written by scripts/install-client-tools.sh).
exec "$NODE_BIN" "$MCPDO_ENTRY" "\$@"
EOF
  chmod +x "$DIR/bin/mcpdo"
  [ "$("$DIR/bin/mcpdo" --version 2>/dev/null || true)" = "$INSPECTOR_VERSION" ] \
    || die "mcpdo --version does not print $INSPECTOR_VERSION"
fi

# --- oidc-provider, the identity provider tests/clients/oidc_provider.mjs runs -------------
OIDC_PREFIX="$DIR/oidc"
OIDC_PKG="$OIDC_PREFIX/node_modules/oidc-provider"
oidc_version() { sed -n 's/^  "version": "\(.*\)",$/\1/p' "$OIDC_PKG/package.json" 2>/dev/null | head -1; }
if [ "$(oidc_version)" != "$OIDC_PROVIDER_VERSION" ]; then
  log "installing oidc-provider@$OIDC_PROVIDER_VERSION into $OIDC_PREFIX (with Node $NODE_VERSION)"
  rm -rf "$OIDC_PREFIX"
  mkdir -p "$OIDC_PREFIX"
  PATH="$NODE_PREFIX/node_modules/node/bin:$PATH" \
    npm install --prefix "$OIDC_PREFIX" --no-audit --no-fund --loglevel=error \
    "oidc-provider@$OIDC_PROVIDER_VERSION" >&2 \
    || die "npm install oidc-provider@$OIDC_PROVIDER_VERSION failed"
  [ "$(oidc_version)" = "$OIDC_PROVIDER_VERSION" ] || die "oidc-provider did not install as $OIDC_PROVIDER_VERSION"
  INSTALLED+=("identity provider: oidc-provider@$OIDC_PROVIDER_VERSION")
fi

# --- nginx and PgBouncer (Debian's packages; each only when none is installed) -------------
find_sbin() { PATH="$PATH:/usr/sbin:/sbin:/usr/local/sbin" command -v "$1" 2>/dev/null || true; }
find_nginx() { find_sbin nginx; }
apt_install() {
  local package="$1"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "$package is not installed and this user cannot install it (no root, no sudo): apt-get install $package"
    SUDO="sudo -n"
  fi
  command -v apt-get >/dev/null 2>&1 || die "$package is not installed and there is no apt-get: install $package by hand"
  log "installing $package from Debian's packages"
  $SUDO apt-get update -qq >&2 || die "apt-get update failed"
  # No service is started: the tests run their own instance as an unprivileged user.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$package" >&2 \
    || die "apt-get install $package failed"
  $SUDO apt-get clean >&2 || true
  [ -n "$(find_sbin "$package")" ] || die "$package is still not on PATH after apt-get install"
}
if [ -z "$(find_nginx)" ]; then
  apt_install nginx
  INSTALLED+=("nginx: $("$(find_nginx)" -v 2>&1 | sed 's/^nginx version: //') (Debian package)")
fi
if [ -z "$(find_sbin pgbouncer)" ]; then
  apt_install pgbouncer
  INSTALLED+=("pgbouncer: $("$(find_sbin pgbouncer)" --version | head -1) (Debian package)")
fi
NGINX="$(find_nginx)"

{
  echo "python_mcp=$PY_MCP_VERSION"
  echo "kubernetes_validate=$KUBERNETES_VALIDATE_VERSION"
  echo "python=$("$VENV/bin/python" --version 2>&1 | awk '{print $2}')"
  echo "node=$("$NODE_BIN" --version)"
  echo "inspector=$(insp_version)"
  echo "oidc_provider=$(oidc_version)"
  echo "nginx=$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')"
  echo "nginx_path=$NGINX"
  echo "pgbouncer=$("$(find_sbin pgbouncer)" --version | head -1 | sed 's/^PgBouncer //')"
} >"$DIR/versions.txt"

if [ "${#INSTALLED[@]}" -eq 0 ]; then
  log "all client tools already installed in $DIR ($(tr '\n' ' ' <"$DIR/versions.txt"))"
else
  for item in "${INSTALLED[@]}"; do log "installed $item"; done
  log "client tools ready in $DIR"
fi
