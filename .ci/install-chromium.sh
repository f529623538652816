#!/usr/bin/env bash
# Install Debian's Chromium for the tests marked `browser` (they are skipped without it).
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
chromium --version
