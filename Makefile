# Developer shortcuts. Uses .venv/bin/python when it exists; override with `make test PY=...`.
PY ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)

.PHONY: test lint format bench docs

test:
	$(PY) -m pytest -q

lint:
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(dir $(PY))lint-imports

format:
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench:
	@set -e; found=0; \
	for script in benchmarks/*.py; do \
		[ -e "$$script" ] || continue; \
		found=1; \
		echo "== $$script"; \
		$(PY) "$$script"; \
	done; \
	[ "$$found" = 1 ] || echo "no benchmarks/*.py scripts"

# The generated reference pages match the code, and the docs site builds with no warning.
docs:
	$(PY) docs/gen_reference.py --check
	$(PY) -m mkdocs build --strict -d site
