#!/usr/bin/env bash
# Install Debian's GHDL for the test that simulates the VHDL alkaid generates (`netcarve export --simulate
# --flavor vhdl`: GHDL turns it into Verilog, then Verilator builds it); the test is skipped without it.
set -euo pipefail
if ! command -v ghdl >/dev/null 2>&1; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ghdl >/dev/null
fi
ghdl --version | head -n 1
