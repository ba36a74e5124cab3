#!/bin/bash
# Runs once an image's spec is installed into $VENV (every image builds on base; both
# build targets). jupyter-lsp looks for language servers at every server start (about
# 0.1 CPU-s of each start, in a thread beside it). What an image holds is known when it
# is built: look once, here, and write what was found into the env's Jupyter
# configuration, with the per-start scan off. A language server added to an image's spec
# is found at its next build. Prints "changed" when the configuration changed.
set -euo pipefail
target=$VENV/etc/jupyter/jupyter_server_config.d/factorylab-language-servers.json
found=$(cd / && HOME=/nonexistent PATH="$VENV/bin:/usr/local/bin:/usr/bin:/bin" "$VENV/bin/python" -I -c '
import json
from jupyter_lsp.manager import LanguageServerManager
manager = LanguageServerManager()
manager.initialize()
settings = {"autodetect": False, "language_servers": manager.language_servers}
print(json.dumps({"LanguageServerManager": settings}, indent=2, sort_keys=True))
')
if [[ -f $target && $(cat "$target") == "$found" ]]; then
  exit 0
fi
install -d -m 0755 "$(dirname "$target")"
printf '%s\n' "$found" > "$target.tmp"
chmod 0644 "$target.tmp"
mv "$target.tmp" "$target"
echo changed
