# Quick start: `make demo` and `make test`. Both set up .venv first.
#
# scripts/setup.sh is idempotent but not free (pip checks take seconds), so it runs
# only when the stamp is missing or older than what it depends on.

VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.geocli-installed

.PHONY: setup demo test lint bench

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh kernels/setup.py $(wildcard kernels/geocli_kernels/*.py kernels/geocli_kernels/*.cpp)
	bash scripts/setup.sh
	touch $@

demo: $(STAMP)
	$(VENV)/bin/geocli classify sample_data/
	$(VENV)/bin/geocli segment sample_data/human_1.ply sample_data/cow.obj --out demo-output/ --per-face

# Lint, format and type checks first (seconds), then every test, slowest 15 listed.
# Quick loop while editing: $(PY) -m pytest -m "not slow"
test: $(STAMP) lint
	$(PY) -m pytest -q --durations=15 tests

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Every figure of the README's performance table, in one run (benchmarks/results/<machine>.json);
# then `$(PY) benchmarks/run.py --readme benchmarks/results/<machine>.json` puts it into README.md.
bench: $(STAMP)
	$(PY) benchmarks/run.py
