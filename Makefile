# Two entry points for a fresh machine: `make certify` (the main job) and `make test`.
# Each creates .venv and installs the project on first use (and again when pyproject.toml changes).
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-stamp

.PHONY: certify test lint system-packages

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

# Certify every meter on the built-in simulated bench; reports land in reports/. The documents are
# signed with the lab's key (~/.meter-bench/keys, or $$METER_BENCH_HOME): created, and said so, if missing.
certify: $(STAMP)
	@$(VENV)/bin/bench keys show >/dev/null 2>&1 || $(VENV)/bin/bench keys init
	mkdir -p reports
	$(VENV)/bin/pytest test_plans/ --html=reports/certification.html --self-contained-html \
		--junitxml=reports/junit.xml $(ARGS)

# The framework's own tests. Real tools and servers the tests talk to (mbpoll, Chromium, poppler's
# pdfinfo/pdftotext/pdftoppm, PostgreSQL) come from Debian when the machine allows it (root);
# without them those tests skip, except under CI=true, where a missing one fails.
test: $(STAMP) system-packages lint
	BENCH_TEST_POSTGRES_URL="$${BENCH_TEST_POSTGRES_URL:-$$(bash .ci/postgres)}" $(VENV)/bin/pytest tests/ $(ARGS)

system-packages:
	@missing=""; for tool in mbpoll:mbpoll chromium:chromium pdfinfo:poppler-utils; do \
		command -v $${tool%%:*} >/dev/null 2>&1 || missing="$$missing $${tool#*:}"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing Debian packages for the tests:$$missing"; \
			apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else echo "note:$$missing not installed; the tests that use them will skip"; fi; \
	fi

# The linter and the type checker, as configured in pyproject.toml: both must be clean.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
