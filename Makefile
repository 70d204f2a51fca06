# permit-ocr: every target installs what it needs into .venv on first use.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# FC's runtime is python3.12: use it when the machine has it, else any python3 >= 3.10.
PY_BOOT := $(shell for p in python3.12 $$(ls -d $$HOME/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null) python3; do \
             $$p -c 'import sys; assert sys.version_info >= (3, 10)' 2>/dev/null && { echo $$p; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
REQS := pyproject.toml requirements/dev.txt requirements/engine.txt function/requirements.txt

.PHONY: help install test lint typecheck run bench bench-engine chaos package fonts clean

help:
	@echo "make run | test | bench | bench-engine | chaos | package | lint"

$(STAMP): $(REQS)
	@test -n "$(PY_BOOT)" || { echo "no python3 >= 3.10 found" >&2; exit 1; }
	test -x $(PY) || $(PY_BOOT) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e . -r requirements/dev.txt -r requirements/engine.txt
	@# oss2 (tests only) drags in pure-Python crcmod, which shares its folder with crcmod-plus (oss-v2's C CRC):
	@# put the C one back so the venv computes CRCs as the deployed package does
	$(PY) -m pip install -q --disable-pip-version-check --force-reinstall --no-deps crcmod-plus==2.3.6
	touch $(STAMP)

install: $(STAMP)

# fonts for the synthetic permit generator: OFL subsets of Noto Sans/Serif CJK are committed in
# local/permit_ocr_local/synth/fonts/; this only checks they are there (no system package is installed)
FONT_DIR := local/permit_ocr_local/synth/fonts
fonts:
	@for f in NotoSansSC-Regular NotoSansSC-Bold NotoSerifSC-Regular NotoSerifSC-Bold; do \
	  test -s $(FONT_DIR)/$$f.subset.otf || { echo "missing $(FONT_DIR)/$$f.subset.otf: restore it with git checkout" >&2; exit 1; }; \
	done

lint: $(STAMP)
	$(VENV)/bin/ruff check function local tests bench
	$(VENV)/bin/mypy

test: $(STAMP) fonts
	$(PY) -m permit_ocr_local.cli check-config s.yaml
	$(VENV)/bin/ruff check function local tests bench
	$(VENV)/bin/mypy
	$(PY) -m pytest -n 2 tests

run: $(STAMP) fonts
	$(PY) -m permit_ocr_local.cli run

bench: $(STAMP)
	$(PY) bench/run.py

bench-engine: $(STAMP) fonts
	$(PY) bench/bench_engine.py $(ARGS)

chaos: $(STAMP)
	$(PY) bench/chaos.py

package: $(STAMP)
	$(PY) bench/package.py --zip --smoke

clean:
	rm -rf $(VENV) build dist var
