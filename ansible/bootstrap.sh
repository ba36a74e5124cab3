#!/bin/bash
# Install what ansible-playbook itself needs: Debian's python3-venv and a tools venv
# with ansible-core. Idempotent; quiet when everything is already there.
set -euo pipefail
TOOLS=${FACTORYLAB_TOOLS:-/opt/factorylab/tools}
if [[ $(id -u) -ne 0 ]]; then
  echo "make up must run as root (it installs packages, users and daemons)." >&2
  exit 1
fi
if ! /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null || ! command -v openssl >/dev/null; then
  echo "Installing python3-venv and openssl from Debian…"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv openssl >/dev/null
fi
# Reinstalled when requirements.txt changes (its checksum is kept beside the venv).
requirements="$(dirname "$0")/requirements.txt"
wanted=$(sha256sum <"$requirements")
if [[ ! -x $TOOLS/bin/ansible-playbook || $(cat "$TOOLS/.requirements" 2>/dev/null) != "$wanted" ]]; then
  echo "Installing ansible-core into $TOOLS…"
  mkdir -p "$(dirname "$TOOLS")"
  /usr/bin/python3 -m venv "$TOOLS"
  "$TOOLS/bin/pip" install -q -r "$requirements"
  echo "$wanted" >"$TOOLS/.requirements"
fi
