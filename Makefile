# FactoryLab. `make up` brings up the local single-node cluster and hub (as root);
# `make test` runs every test against it; `make bench` measures spawn speed.
# Assumes Debian 12 (bookworm), root, and `make` and `git` (to get this tree); the
# targets install everything else: python3-venv (apt) for .venv, Chromium, Node.js
# (make up; the test identity provider needs 20.18 or later, see idp), Slurm, the hub.
SHELL := /bin/bash
.DEFAULT_GOAL := help
TOOLS ?= /opt/factorylab/tools
SITE ?= hub_config/site.local.yaml
# The demo cluster's compute nodes: make up NODES=N (1 to 8).
NODES ?= 2
# Prometheus scraping the hub's metrics (ansible/roles/prometheus): off on the demo unless
# make up PROMETHEUS=true; make test and make integration turn it on, and pass it on to
# the tests' own make up runs through the environment.
PROMETHEUS ?= false
export PROMETHEUS
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: help up down images test unit integration lint bench venv browser idp

help:
	@echo "make up      bring up the demo cluster (login node + NODES=2 compute nodes) and the hub (root)"
	@echo "make down    stop everything make up started"
	@echo "make images  build every image of the site file as a venv under /opt/factorylab/envs"
	@echo "make test    install test tools, bring up the cluster if needed, run all tests"
	@echo "make unit    unit tests and the doctests in spawners/ (no cluster needed)"
	@echo "make bench   cold spawn, 40-user burst, Dask scale-up, first cell (browser), memory, extensions,"
	@echo "             the Lab profile's start, a GPU kernel job opened in a running Lab, a day of GPU kernels"
	@echo "             vs plain batchspawner and raw sbatch"
	@echo "make lint    ruff and ansible-lint"
	@echo "Needs Debian 12, root, make and git; the targets install the rest (python3-venv too)."

up:
	@if [[ ! "$(NODES)" =~ ^[1-8]$$ ]]; then \
	  echo "NODES=$(NODES): the demo cluster has 1 to 8 compute nodes. Run make up NODES=2 (the default) or another number from 1 to 8." >&2; \
	  exit 2; fi
	@if [[ "$(PROMETHEUS)" != true && "$(PROMETHEUS)" != false ]]; then \
	  echo "PROMETHEUS=$(PROMETHEUS): say true or false (make up PROMETHEUS=true also runs Prometheus)." >&2; \
	  exit 2; fi
	@ansible/bootstrap.sh
	cd ansible && $(TOOLS)/bin/ansible-playbook site.yml -e factorylab_demo_node_count=$(NODES) \
	  -e factorylab_prometheus=$(PROMETHEUS)
	@$(TOOLS)/bin/python -c 'import yaml,sys; s=yaml.safe_load(open("$(SITE)")); d=s.get("demo",{}); \
	print("\nFactoryLab is up: " + s.get("hub",{}).get("public_url","http://127.0.0.1:8000")); \
	print("Demo login (demo only): %s01 … %s%02d, password %r" % (d.get("prefix","demo"), d.get("prefix","demo"), d.get("count",40), d.get("password"))) if d.get("enabled") else None; \
	print("Admin API token: /etc/factorylab/admin-api.token (root only)"); \
	print("Hub admin (demo only): %s-admin, password in /etc/factorylab/demo-admin.password (root only)" % d.get("prefix","demo")) if d.get("enabled") and s.get("users",{}).get("admin_group") else None'

images:
	@ansible/bootstrap.sh
	cd ansible && $(TOOLS)/bin/ansible-playbook site.yml --tags images

# supervisord: each FactoryLab program in turn, highest priority first (the reverse of
# the start order); supervisord itself stays up, and make up starts them again in order.
# systemd: every unit is PartOf=factorylab.target. factorylab-service: deploys before.
down:
	@if [[ -x /usr/local/sbin/factorylab-service ]]; then /usr/local/sbin/factorylab-service stop-all; \
	elif [[ -d /run/systemd/system && -e /etc/systemd/system/factorylab.target ]]; then \
	  systemctl stop factorylab.target; \
	elif compgen -G '/etc/supervisor/conf.d/factorylab-*.conf' >/dev/null; then \
	  if supervisorctl pid >/dev/null 2>&1; then \
	    supervisorctl stop $$(grep -H '^priority=' /etc/supervisor/conf.d/factorylab-*.conf \
	      | sort -t= -k2,2nr | sed -E 's|^.*/(factorylab-[^/]+)[.]conf:.*$$|\1|'); \
	  else echo "supervisord is not running; nothing to stop."; fi; \
	else echo "FactoryLab is not installed here; nothing to stop."; fi

# Debian's python3 has no ensurepip (so no `python3 -m venv`) until python3-venv is in.
$(VENV)/.installed: pyproject.toml
	@/usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null || { \
	  echo "python3 -m venv needs Debian's python3-venv: installing it"; \
	  apt-get update -q && apt-get install -y -q python3-venv; }
	/usr/bin/python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check spawners tests bench notebooks images
	cd ansible && ../$(VENV)/bin/ansible-lint --offline site.yml

# spawners/ too: its doctests (pyproject: --doctest-modules).
unit: venv
	$(PY) -m pytest tests/unit spawners $(PYTEST_ARGS)

integration: PROMETHEUS = true
integration: venv up browser idp
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

# Browser tests drive Debian's Chromium through Playwright; no browser is ever downloaded.
browser:
	@test -x /usr/lib/chromium/chromium || { apt-get update -q && apt-get install -y -q chromium; }

# The login tests' identity provider: npm oidc-provider 9.13.3, from the lock file. It
# needs Node.js 20.18 or later (it calls URL.parse and crypto.hash; its authors support
# v22 LTS and later): Debian 12's own nodejs 18, which `make up` installs when there is
# no node, is too old.
IDP := tests/oidc
IDP_NODE_CHECK = node -e 'const [major, minor] = process.versions.node.split(".").map(Number); \
	process.exit(major > 20 || (major === 20 && minor >= 18) ? 0 : 1)' 2>/dev/null || { \
	echo "The login tests' identity provider (npm oidc-provider, tests/oidc) needs Node.js \
	20.18 or later (22 LTS is best); this machine has $$(node --version 2>/dev/null || echo none)."; \
	exit 1; }
$(IDP)/node_modules/.installed: $(IDP)/package.json $(IDP)/package-lock.json
	@$(IDP_NODE_CHECK)
	cd $(IDP) && npm ci --no-audit --no-fund
	touch $@

idp: $(IDP)/node_modules/.installed
	@$(IDP_NODE_CHECK)

# Every test, and the doctests in spawners/; the 25 slowest are listed at the end.
test: PROMETHEUS = true
test: venv up browser idp
	$(MAKE) lint
	$(PY) -m pytest tests spawners --durations=25 $(PYTEST_ARGS)

bench: venv up browser
	$(PY) -m bench.cold_spawn
	$(PY) -m bench.burst
	$(PY) -m bench.dask_scale
	$(PY) -m bench.first_cell
	$(PY) -m bench.memory
	$(PY) -m bench.extensions
	$(PY) -m bench.lab_start
	$(PY) -m bench.kernel_open
	$(PY) -m bench.gpu_replay
	$(PY) -m bench.course_warm
