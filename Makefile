# FactoryLab. `make up` brings up the local single-node cluster and hub (as root);
# `make test` runs every test against it; `make bench` measures spawn speed.
SHELL := /bin/bash
.DEFAULT_GOAL := help
TOOLS ?= /opt/factorylab/tools
SITE ?= hub_config/site.local.yaml
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: help up down images test unit integration lint bench venv browser idp

help:
	@echo "make up      bring up Slurm + JupyterHub on this machine (root)"
	@echo "make down    stop everything make up started"
	@echo "make images  build every image of the site file as a venv under /opt/factorylab/envs"
	@echo "make test    install test tools, bring up the cluster if needed, run all tests"
	@echo "make bench   cold spawn, 40-user burst, Dask scale-up and time to first cell (browser)"
	@echo "             vs plain batchspawner and raw sbatch"
	@echo "make lint    ruff and ansible-lint"

up:
	@ansible/bootstrap.sh
	cd ansible && $(TOOLS)/bin/ansible-playbook site.yml
	@$(TOOLS)/bin/python -c 'import yaml,sys; s=yaml.safe_load(open("$(SITE)")); d=s.get("demo",{}); \
	print("\nFactoryLab is up: " + s.get("hub",{}).get("public_url","http://127.0.0.1:8000")); \
	print("Demo login (demo only): %s01 … %s%02d, password %r" % (d.get("prefix","demo"), d.get("prefix","demo"), d.get("count",40), d.get("password"))) if d.get("enabled") else None; \
	print("Admin API token: /etc/factorylab/admin-api.token (root only)")'

images:
	@ansible/bootstrap.sh
	cd ansible && $(TOOLS)/bin/ansible-playbook site.yml --tags images

down:
	@if [[ -x /usr/local/sbin/factorylab-service ]]; then /usr/local/sbin/factorylab-service stop-all; \
	else echo "FactoryLab is not installed here; nothing to stop."; fi

$(VENV)/.installed: pyproject.toml
	/usr/bin/python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -e '.[test]' ansible-lint
	touch $@

venv: $(VENV)/.installed

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check spawners tests bench notebooks images
	cd ansible && ../$(VENV)/bin/ansible-lint --offline site.yml

unit: venv
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

integration: venv up browser idp
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

# Browser tests drive Debian's Chromium through Playwright; no browser is ever downloaded.
browser:
	@test -x /usr/lib/chromium/chromium || { apt-get update -q && apt-get install -y -q chromium; }

# The login tests' identity provider: npm oidc-provider, from the lock file (needs the
# Node.js that `make up` installs for the proxy).
IDP := tests/oidc
$(IDP)/node_modules/.installed: $(IDP)/package.json $(IDP)/package-lock.json
	cd $(IDP) && npm ci --no-audit --no-fund
	touch $@

idp: $(IDP)/node_modules/.installed

test: venv up browser idp
	$(MAKE) lint
	$(PY) -m pytest tests $(PYTEST_ARGS)

bench: venv up browser
	$(PY) -m bench.cold_spawn
	$(PY) -m bench.burst
	$(PY) -m bench.dask_scale
	$(PY) -m bench.first_cell
