# One command sets up and runs (make run), one sets up and tests (make test).
# Setup: a pinned uv in .tools/, then .venv/ from the committed uv.lock, on Python 3.10.

SHELL := /bin/bash
UV_VERSION := 0.13.9
PY_VERSION := 3.10.13
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
STAMP := $(VENV)/.synced
# Python 3.10 from pyenv when present (these machines), else whatever python3.10 uv finds.
PYTHON := $(shell p=$$(pyenv prefix $(PY_VERSION) 2>/dev/null) && echo $$p/bin/python3.10 || echo 3.10)
RUN_ROOT ?= runs/sample
export UV_PYTHON_DOWNLOADS := never
export TF_USE_LEGACY_KERAS := 1

.PHONY: setup run test test-fast test-contracts lint format docs bench bench-scale clean

setup: $(STAMP)

$(UV):
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet "uv==$(UV_VERSION)"

$(STAMP): $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	touch $(STAMP)

run: setup
	$(VENV)/bin/imgtfx run --sample --root $(RUN_ROOT)

# One test process per core: most tests are single-threaded Python (Beam's local runner, TFX's
# orchestration), so two cores run two at once. A file's tests share a process (--dist loadfile),
# so a module's shared pipeline run is made once. Files go out in collection order, which
# tests/conftest.py sets to the end-to-end files first (xdist's default reorder, by number of
# tests per file, started the long single-test runs last, on a busy core).
PYTEST := $(VENV)/bin/pytest -n auto --dist loadfile --no-loadscope-reorder

test: setup
	$(PYTEST) -m "not contracts"

# The whole Kubeflow package on the other installs: standalone KFP 2.4.1, 2.5.0 and 2.16.1, a
# profile namespace of multi-user 2.17.0, 2.15.0's with data in a store of the user's own and a
# backbone, and an s3:// root (make test runs 2.15.0's profile; about 4 minutes on 2 cores).
test-contracts: setup
	$(VENV)/bin/pytest -n auto -m contracts tests/kubeflow

test-fast: setup
	$(PYTEST) -m "not slow and not contracts"

lint: setup
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The documentation site, into site/: the command line reference regenerated from the parser,
# then mkdocs-material, strictly (a broken link or a page left out of the navigation fails).
docs: setup
	$(VENV)/bin/python docs/cli_reference.py
	$(VENV)/bin/mkdocs build --strict

kubeflow/requirements.txt: uv.lock $(UV)
	$(UV) export --frozen --no-default-groups --no-hashes --no-emit-project --no-annotate \
		--format requirements-txt -o $@ -q

# Conversion against the decode bound and the blog's method, on contest photos and on 640x480.
bench: setup
	$(VENV)/bin/python bench/bench.py
	$(VENV)/bin/python bench/bench.py --photo-size 640x480

# The whole pipeline on trees of the contest's real shape (22,026 and 88,102 photos), the
# larger one again with bursts of near shots and with every photo a repeat (writes ~33 GB once).
bench-scale: setup
	$(VENV)/bin/python bench/bench.py --scale --copies bursts,repeats

clean:
	rm -rf $(VENV) $(TOOLS) runs site
