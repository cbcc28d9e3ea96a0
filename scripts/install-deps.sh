#!/usr/bin/env bash
# What building and testing mmnet needs beyond a Rust toolchain, installed if missing
# (idempotent; `make test` and `make build` run it):
#   - perl, make and a C compiler: librdkafka and the vendored OpenSSL behind TLS and SASL
#     are built from source by cargo (rdkafka's `ssl-vendored`);
#   - stunnel and openssl: the TLS tests put a TLS-terminating proxy in front of Tansu,
#     which serves plaintext only, with certificates from a CA the test makes;
#   - moto (PyPI), in .tools/moto-venv: an S3-compatible server, the durable storage the
#     broker-restart tests run Tansu on.
set -euo pipefail
cd "$(dirname "$0")/.."
MOTO_VERSION=5.1.22

need=()
command -v perl >/dev/null || need+=(perl)
command -v make >/dev/null || need+=(make)
command -v cc >/dev/null || need+=(gcc)
command -v openssl >/dev/null || need+=(openssl)
command -v stunnel4 >/dev/null || command -v stunnel >/dev/null || need+=(stunnel4)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if ((${#need[@]})); then
  SUDO=()
  [[ $(id -u) -eq 0 ]] || SUDO=(sudo)
  echo "install-deps: installing ${need[*]} (apt)" >&2
  "${SUDO[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
fi

MOTO=.tools/moto-venv
if ! "$MOTO/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
  rm -rf "$MOTO"
  python3 -m venv "$MOTO"
  "$MOTO/bin/pip" install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi
