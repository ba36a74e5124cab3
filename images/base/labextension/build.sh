#!/bin/bash
# Build the factorylab-session labextension in this directory into dist/, against the
# JupyterLab of the environment VENV (its core package metadata, so the shared
# packages and their singletons match the JupyterLab that serves it). The one recipe
# for every target: a developer's checkout, the deploy (ansible role envs, in a copy
# under /var/cache/factorylab/labextension) and the Apptainer images (%post).
#
#   bash images/base/labextension/build.sh /opt/factorylab/envs/base
#
# Needs Node.js >= 18 and npm, and the npm registry for `npm ci` (the exact versions
# and integrity hashes of package-lock.json); dependencies' install scripts never run.
#
# The last step is what `jupyter labextension build .` runs for an extension built
# with @jupyterlab/builder. It is called directly because in JupyterLab 4.6 that
# command is a deprecated alias of `jupyter-builder build`, which refuses any
# Node.js older than 20.19 (Debian 12 has 18.19) even though webpack does not need it.
set -euo pipefail
venv=${1:?usage: build.sh VENV}
cd "$(dirname "$0")"
core=$("$venv/bin/python" -c 'import jupyterlab, os; print(os.path.join(os.path.dirname(jupyterlab.__file__), "staging"))')
npm ci --no-audit --no-fund --ignore-scripts
rm -rf lib dist
node_modules/.bin/tsc
node node_modules/@jupyterlab/builder/lib/build-labextension.js --core-path "$core" .
