# Two commands: `make run` serves the API on http://127.0.0.1:$(PORT); `make test` runs every test.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 3000
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
SAM_PYTHON ?= python3
AWSCLI_VENV := .venv-awscli
AWS := $(AWSCLI_VENV)/bin/aws
export AWS_DEFAULT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY := 0

.PHONY: run test test-pooled pgbouncer chromium mosquitto bench fuzz lint typecheck openapi sam-validate sam-build awscli clean

$(VENV)/.installed: requirements-dev.txt layers/jobs_core/requirements.txt tools/devpaths.py $(wildcard functions/*/*.py)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) tools/devpaths.py
	touch $@

# exec: the server is make's own child, so it sees make go however make is stopped, and stops
# everything it started (the embedded database and MQTT broker) with it.
run: $(VENV)/.installed
	exec env PORT=$(PORT) $(PY) -m jobs_local.server

test: $(VENV)/.installed awscli pgbouncer chromium mosquitto
	$(PY) -m pytest

# The whole suite again with the handlers, the local server and the tools connected through
# PgBouncer in transaction mode (5 server connections), as RDS Proxy stands in front of Aurora.
test-pooled: $(VENV)/.installed awscli pgbouncer chromium mosquitto
	JOBS_TEST_POOLED=1 $(PY) -m pytest

# $(call apt_install,CHECK,PACKAGES): Debian packages a test needs, installed with apt-get (as
# root, as here) unless CHECK already passes; fails loudly when CHECK still fails after.
apt_install = @{ $(1); } || \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(2) >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(2) >/dev/null; }; } && \
	  { $(1); } || { echo "could not install $(2) (apt-get, as root)" >&2; exit 1; }

# Debian's Chromium and its WebDriver, which the console's test drives headless.
chromium:
	$(call apt_install,test -x /usr/bin/chromium && test -x /usr/bin/chromedriver,chromium chromium-driver)

# Debian's PgBouncer, which the tests start on ports of their own.
pgbouncer:
	$(call apt_install,test -x /usr/sbin/pgbouncer,pgbouncer)

# Debian's Mosquitto (and its clients), the broker people run, which the tests start on ports of
# their own besides the embedded one.
mosquitto:
	$(call apt_install,test -x /usr/sbin/mosquitto && test -x /usr/bin/mosquitto_sub,mosquitto mosquitto-clients)

# The AWS CLI, in a venv of its own, and .local/aws-config: the plugin that sends this service's
# credentials (tools/awscli_jobs_plugin.py). The tests drive two of its commands.
awscli: $(AWSCLI_VENV)/.installed .local/aws-config

$(AWSCLI_VENV)/.installed: requirements-awscli.txt
	test -x $(AWSCLI_VENV)/bin/python || $(PYTHON) -m venv $(AWSCLI_VENV)
	$(AWSCLI_VENV)/bin/pip install --quiet -r requirements-awscli.txt
	$(AWSCLI_VENV)/bin/python -c "import sys, sysconfig, pathlib; pathlib.Path(sysconfig.get_paths()['purelib'], 'iot_jobs_plugin.pth').write_text(sys.argv[1] + '\n')" "$(CURDIR)/tools"
	touch $@

.local/aws-config: tools/awscli_jobs_plugin.py
	mkdir -p .local
	printf '[plugins]\niot_jobs = awscli_jobs_plugin\n' > $@

# Figures against baselines measured in the same run, on a database of its own; kept out of `make test`.
bench: $(VENV)/.installed
	$(PY) -m bench --out bench/RESULTS.md

# Schemathesis against the local server, longer than the bounded run in `make test`.
fuzz: $(VENV)/.installed
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-300} $(PY) -m pytest tests/test_fuzz.py -s

lint: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(VENV)/.installed
	$(PY) -m mypy

openapi: $(VENV)/.installed  ## regenerate the committed openapi.json from the handlers
	$(PY) -m jobs_local.openapi

$(SAM_VENV)/.installed: requirements-sam.txt
	test -x $(SAM) || $(SAM_PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet -r requirements-sam.txt
	touch $@

sam-validate: $(SAM_VENV)/.installed
	$(SAM) validate --lint
	$(SAM_VENV)/bin/cfn-lint template.yaml

# The layer and functions are built for python3.13 on arm64; pyenv provides python3.13 here.
sam-build: $(SAM_VENV)/.installed sam-validate
	PYENV_VERSION=$${PYENV_VERSION:-3.13.0} $(SAM) build --parallel

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache
