# Two entry points for a fresh machine: `make certify` (the main job) and `make test`.
# Each creates .venv and installs the project on first use (and again when pyproject.toml changes).
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-stamp

.PHONY: certify test system-packages

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e .
	touch $(STAMP)

# Certify every meter on the built-in simulated bench; reports land in reports/.
certify: $(STAMP)
	mkdir -p reports
	$(VENV)/bin/pytest test_plans/ --html=reports/certification.html --self-contained-html \
		--junitxml=reports/junit.xml $(ARGS)

# The framework's own tests. Real tools the tests talk to (mbpoll, a Modbus master) come from
# Debian when the machine allows it; without them those tests skip, except under CI=true.
test: $(STAMP) system-packages
	$(VENV)/bin/pytest tests/ $(ARGS)

system-packages:
	@command -v mbpoll >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mbpoll >/dev/null) ; } || \
		echo "note: mbpoll not installed; the independent Modbus master test will skip"
