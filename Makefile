# xrsmap-dask: two commands on a fresh machine (Python 3.11+ and make): `make demo`, `make test`.
# the first Python >= 3.11 on PATH (override: make PYTHON=/path/to/python3.12 test)
PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	2>/dev/null && echo $$p && break; done)
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test bench venv clean

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "xrsmap-dask needs Python >= 3.11 (set PYTHON=...)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m xrsmap_dask.demo --out demo_output

test: $(STAMP)
	$(PY) -m pytest -q

# make bench BENCH_ARGS='--small' for a smoke run, '--rounds 5' for more rounds
bench: $(STAMP)
	$(PY) benchmarks/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) demo_output bench_data *.egg-info
