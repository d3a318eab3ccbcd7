#!/usr/bin/env bash
# Install, build and run sluice on conf/kong.yml, on a fresh Debian 12
# machine as root:
#   ./scripts/run.sh [extra sluice options, e.g. --workers 2]
# Proxy on 0.0.0.0:8000, admin on 127.0.0.1:8001 (sluice's defaults).
#   SLUICE_SKIP_APT=1   skip apt-get
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if [[ "${SLUICE_SKIP_APT:-0}" != 1 ]]; then
  SUDO=""
  if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null || { echo "run as root (or set SLUICE_SKIP_APT=1)" >&2; exit 1; }
    SUDO="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update
  $SUDO apt-get install -y --no-install-recommends build-essential cmake pkg-config libevent-dev \
    libcurl4-openssl-dev libcjson-dev libhiredis-dev libyaml-dev libpcre2-dev libssl-dev libmimalloc-dev ca-certificates
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc 2>/dev/null || echo 2)"
exec ./build/sluice -c conf/kong.yml "$@"
