# permit-ocr: every target installs what it needs into .venv on first use.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# FC's runtime is python3.12: use it when the machine has it, else any python3 >= 3.10.
PY_BOOT := $(shell for p in python3.12 $$(ls -d $$HOME/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null) python3; do \
             $$p -c 'import sys; assert sys.version_info >= (3, 10)' 2>/dev/null && { echo $$p; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
WHEELS := var/wheelhouse/.fetched
REQS := pyproject.toml requirements/dev.txt requirements/engine.txt function/requirements.txt

.PHONY: help install test lint typecheck run bench bench-engine chaos package package-engine fonts clean

help:
	@echo "make run | test | bench | bench-engine | chaos | package | package-engine | lint"

$(STAMP): $(REQS)
	@test -n "$(PY_BOOT)" || { echo "no python3 >= 3.10 found" >&2; exit 1; }
	@echo "permit-ocr: first use: installing into $(VENV) (a few minutes, once; later targets start at once)"
	test -x $(PY) || $(PY_BOOT) -m venv $(VENV)
	@echo "permit-ocr: [1/2] Python packages (pip; quiet unless something fails) ..."
	$(PY) -m pip install -q --disable-pip-version-check -e . -r requirements/dev.txt -r requirements/engine.txt
	@# oss2 (tests only) drags in pure-Python crcmod, which shares its folder with crcmod-plus (oss-v2's C CRC):
	@# put the C one back so the venv computes CRCs as the deployed package does
	@echo "permit-ocr: [2/2] the C CRC for OSS ..."
	$(PY) -m pip install -q --disable-pip-version-check --force-reinstall --no-deps crcmod-plus==2.3.6
	touch $(STAMP)
	@echo "permit-ocr: installed"

# the deployed package's wheels (FC's manylinux/cp312), kept in var/wheelhouse: later package builds and the
# test that builds the package need no network
$(WHEELS): $(STAMP) function/requirements.txt
	@echo "permit-ocr: fetching the deployed package's wheels (manylinux, python3.12) into var/wheelhouse ..."
	$(PY) bench/package.py --fetch
	touch $(WHEELS)

# the browser tests' driver, installed by `make test` only (165 MB that `make run` and the benchmarks never use)
BROWSER := $(VENV)/.browser
$(BROWSER): $(STAMP) requirements/browser.txt
	$(PY) -m pip install -q --disable-pip-version-check -r requirements/browser.txt
	touch $(BROWSER)

install: $(STAMP) $(WHEELS)

# the real Serverless Devs CLI (`s`, pinned by requirements/serverless-devs/package-lock.json) in a project-local
# folder, for the tests that render s.yaml with `s preview` (offline) and compare it with our own resolution;
# without node they skip and say so (npm ci needs the npm registry once, like pip)
SDEVS_DIR := var/serverless-devs
SDEVS := $(SDEVS_DIR)/node_modules/.bin/s
$(SDEVS): requirements/serverless-devs/package.json requirements/serverless-devs/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  echo "permit-ocr: installing the Serverless Devs CLI (@serverless-devs/s 3.1.10) into $(SDEVS_DIR) ..."; \
	  mkdir -p $(SDEVS_DIR) && cp requirements/serverless-devs/package*.json $(SDEVS_DIR)/ && \
	  (cd $(SDEVS_DIR) && npm ci --no-audit --no-fund --loglevel=error >/dev/null) && touch $(SDEVS); \
	else echo "permit-ocr: no node/npm here: the s preview tests will skip (install nodejs and npm to run them)"; fi

# fonts for the synthetic permit generator: OFL subsets of Noto Sans/Serif CJK are committed in
# local/permit_ocr_local/synth/fonts/; this only checks they are there (no system package is installed)
FONT_DIR := local/permit_ocr_local/synth/fonts
fonts:
	@for f in NotoSansSC-Regular NotoSansSC-Bold NotoSerifSC-Regular NotoSerifSC-Bold; do \
	  test -s $(FONT_DIR)/$$f.subset.otf || { echo "missing $(FONT_DIR)/$$f.subset.otf: restore it with git checkout" >&2; exit 1; }; \
	done

# the house plan (docs/architecture.md): pyproject.toml's import contracts
lint: $(STAMP)
	$(VENV)/bin/ruff check function engine-function local tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

test: $(STAMP) $(WHEELS) $(BROWSER) $(SDEVS) fonts
	$(PY) -m permit_ocr_local.cli check-config s.yaml
	$(VENV)/bin/ruff check function engine-function local tests bench
	$(VENV)/bin/mypy
	$(PY) -m pytest -n 2 -rs tests

# Ctrl-C: `permit-ocr run` releases what it holds and says so in one line (exit 130); the recipe then ends
# quietly, so make adds no "*** [run] Interrupt" of its own
# ARGS: e.g. "--backend cascade" or "--shadow-rate 1" (docs/selfhosted.md)
run: $(STAMP) fonts
	@$(PY) -m permit_ocr_local.cli run $(ARGS) || { status=$$?; test $$status -eq 130 || exit $$status; }

bench: $(STAMP)
	$(PY) bench/run.py
	$(PY) bench/windows.py
	$(PY) bench/package_engine.py --check 2>/dev/null || $(PY) bench/package_engine.py --zip
	$(PY) bench/engine_function.py

bench-engine: $(STAMP) fonts
	$(PY) bench/bench_engine.py $(ARGS)

chaos: $(STAMP)
	$(PY) bench/chaos.py $(ARGS)

# s.yaml's pre-deploy action runs this, so `s deploy` always ships function/ as it is now
package: $(STAMP) $(WHEELS)
	$(PY) bench/package.py --zip --smoke
	$(PY) bench/package.py --check

# s.selfhosted.yaml's pre-deploy action for the engine function: ./dist/engine (the first build fetches its wheels,
# about 150 MB, into var/wheelhouse; later builds are offline)
package-engine: $(STAMP) fonts
	$(PY) bench/package_engine.py --zip --smoke
	$(PY) bench/package_engine.py --check

clean:
	rm -rf $(VENV) build dist var
