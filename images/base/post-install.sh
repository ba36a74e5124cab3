#!/bin/bash
# Runs once an image's spec is installed into $VENV (every image builds on base; both
# build targets). jupyter-lsp would look for language servers at every server start
# (about 0.1 CPU-s of each start, in a thread beside it). What an image holds is known
# when it is built: look once, here, and list what was found where jupyter-lsp reads
# server specs (jupyter_server_config.d); the env's jupyter_server_config.json (overlay)
# turns the per-start scan off. Prints "changed" when the list changed.
set -euo pipefail
target=$VENV/etc/jupyter/jupyter_server_config.d/factorylab-language-servers.json
# no configuration but the defaults: a list from an earlier build or from this host's
# /etc/jupyter must not come back as "found"
found=$(cd / && HOME=/nonexistent JUPYTER_NO_CONFIG=1 PATH="$VENV/bin:/usr/local/bin:/usr/bin:/bin" \
  "$VENV/bin/python" -I -c '
import json
from jupyter_lsp.manager import LanguageServerManager
found = LanguageServerManager()._autodetect_language_servers(only_installed=True)
servers = {key: spec for key, spec in found}
print(json.dumps({"LanguageServerManager": {"language_servers": servers}}, indent=2, sort_keys=True))
')
if [[ -f $target && $(cat "$target") == "$found" ]]; then
  exit 0
fi
install -d -m 0755 "$(dirname "$target")"
printf '%s\n' "$found" > "$target.tmp"
chmod 0644 "$target.tmp"
mv "$target.tmp" "$target"
echo changed
