#!/usr/bin/env bash
# The SASL-capable Tansu for `make test-sasl`: Tansu keeps SCRAM credentials only on
# PostgreSQL storage, which the PyPI build (scripts/install-tansu.sh) lacks, so this one is
# built from crates.io source (tansu 0.6.0, the same version; PostgreSQL storage only, no
# DataFusion) into a cache outside the clone: ~15 min once per machine. Also installs a
# PostgreSQL server (Debian) if missing. Idempotent.
set -euo pipefail
VERSION=0.6.0
ROOT=${MMNET_CACHE:-$HOME/.cache/mmnet}/tansu-sasl-$VERSION
if [[ -x $ROOT/bin/tansu ]] && "$ROOT/bin/tansu" --version >/dev/null 2>&1; then
  echo "$ROOT/bin/tansu"
  exit 0
fi
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  SUDO=()
  [[ $(id -u) -eq 0 ]] || SUDO=(sudo)
  "${SUDO[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq postgresql postgresql-client >/dev/null
fi
echo "install-tansu-sasl: building tansu $VERSION with PostgreSQL storage (~15 min, once)" >&2
cargo install --locked --quiet --root "$ROOT" tansu --version "$VERSION" \
  --no-default-features --features postgres
echo "$ROOT/bin/tansu"
