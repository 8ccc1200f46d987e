# Short verbs for the course. `make book` builds the site, `make test` checks everything.
# Every target prints the commands it runs.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Override on machines where this pin does not resolve to a CPU-only wheel, e.g.
#   make install TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
TORCH_SPEC ?= torch==2.13.0
EXTRAS := course,book,test,lab,bench,progress,grade
STAMP := $(VENV)/.stamp-install
HTML_INDEX := $(CURDIR)/_build/html/index.html

# Notebooks checked by nbval (folders that do not exist yet are left out).
NB_DIRS := $(wildcard chapters exercises/source)
NB_ALL = $(sort $(wildcard chapters/[0-9]*.ipynb exercises/source/*.ipynb))
LINT_PATHS := $(wildcard mafkit tests benchmarks chapters exercises _ext tools)

# Unit tests and site checks draw figures off screen. One thread per process: nbval runs two
# kernels on two cores, and one thread also keeps float results the same on any core count.
TEST_ENV := MPLBACKEND=Agg OMP_NUM_THREADS=1
# Notebook kernels must use the inline backend: a stored figure's output holds a text/plain
# part ("<Figure size ...>") that nbval compares, and with Agg the figure would not be shown.
NB_ENV := MPLBACKEND=module://matplotlib_inline.backend_inline PYTHONHASHSEED=0 OMP_NUM_THREADS=1

.PHONY: help install book html open test lint unit unit-slow doctest nbval sitecheck pdf lab \
        execute execute-all clean bench bench-quick assignments html-nosolutions notebooks anywhere

help:
	@echo "make book         build the site (creates .venv on first use) and print where it is"
	@echo "make test         lint + unit + doctest + nbval + book build + site checks"
	@echo "make pdf          the whole book as one PDF: _build/pdf/maf-course.pdf"
	@echo "make lab          open the notebooks in JupyterLab"
	@echo "make execute NB=chapters/01_made.ipynb   re-run one notebook and store its outputs"
	@echo "make execute-all  re-run every notebook and store the outputs"
	@echo "make notebooks    write the plain-Markdown copies in notebooks/ that students open"
	@echo "make install      create .venv and install the course (only if pyproject.toml changed)"
	@echo "make assignments  student notebooks and the grader's files from exercises/source"
	@echo "make html-nosolutions  the site without any solution (for a class)"
	@echo "make clean        remove build outputs and caches (keeps .venv)"
	@echo "make bench        speed and quality against zuko and nflows (long: see benchmarks/RESULTS.md)"
	@echo "make bench-quick  the speed tables only, fewer repeats"

# ---------------------------------------------------------------- environment

install: $(STAMP)

$(BIN)/python:
	@py=""; \
	for cand in $(PYTHON) python3 python3.13 python3.12 python3.11 python3.10; do \
	  if command -v "$$cand" >/dev/null 2>&1 && \
	     "$$cand" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then \
	    py="$$cand"; break; \
	  fi; \
	done; \
	if [ -z "$$py" ]; then \
	  echo "error: the course needs Python 3.10 or newer, and none was found" >&2; \
	  echo "       (python3 is: $$(command -v python3 >/dev/null 2>&1 && python3 --version 2>&1 || echo 'not installed'))." >&2; \
	  echo "       Install Python >= 3.10, or point to one: make install PYTHON=/path/to/python3.11" >&2; \
	  exit 1; \
	fi; \
	echo "+ $$py -m venv $(VENV)"; \
	"$$py" -m venv $(VENV)

# The stamp is newer than pyproject.toml once the install succeeded, so re-running is free.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install $(TORCH_SPEC)
	$(BIN)/python -m pip install -e ".[$(EXTRAS)]"
	touch $(STAMP)

# ---------------------------------------------------------------- the book

html: install
	$(BIN)/jupyter-book build . -W -n --keep-going

book: html open

open:
	@echo "The book is at: $(HTML_INDEX)"
	@if [ -n "$${DISPLAY:-}$${WAYLAND_DISPLAY:-}" ] || [ "$$(uname)" = Darwin ]; then \
	  echo "+ python -m webbrowser file://$(HTML_INDEX)"; \
	  $(BIN)/python -m webbrowser "file://$(HTML_INDEX)" >/dev/null 2>&1 || \
	    echo "(could not open a browser; open the file above yourself)"; \
	else \
	  echo "(no display found; open the file above in a browser)"; \
	fi

lab: install
	$(BIN)/jupyter lab

# ---------------------------------------------------------------- tests

test: lint unit unit-slow doctest nbval html sitecheck anywhere
	@echo "make test: all checks passed"

lint: install
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

# `make unit` is the quick loop (seconds); tests marked slow (notebook kernels, torch.compile,
# fresh interpreters) run in `make unit-slow`, and both in `make test`.
unit: install
	$(TEST_ENV) $(BIN)/python -m pytest tests --ignore=tests/site --ignore=tests/anywhere -m "not slow"

unit-slow: install
	$(TEST_ENV) $(BIN)/python -m pytest tests --ignore=tests/site --ignore=tests/anywhere -m slow

# pytest exits with 5 when it collects nothing: not an error while mafkit has no doctests.
doctest: install
	@echo "+ $(TEST_ENV) $(BIN)/python -m pytest --doctest-modules mafkit"
	@$(TEST_ENV) $(BIN)/python -m pytest --doctest-modules mafkit; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "doctest: mafkit has no doctests yet (pytest exit 5), nothing to check"; rc=0; fi; \
	exit $$rc

# nbval runs every stored notebook again and compares the outputs; `--dist loadfile` keeps
# all cells of one notebook on one worker. The plugin tests/nbval_timing.py prints the time
# and peak memory of each notebook (also written to _build/notebook-timing.md).
NBVAL_CMD = $(BIN)/python -m pytest -p tests.nbval_timing --nbval --nbval-current-env \
	--nbval-sanitize-with tests/nbval_sanitize.cfg -n 2 --dist loadfile $(NB_DIRS)

nbval: install
	@echo "+ $(NB_ENV) $(NBVAL_CMD)"
	@$(NB_ENV) $(NBVAL_CMD); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "nbval: no notebooks in chapters/ or exercises/solutions/ yet (pytest exit 5), nothing to check"; rc=0; fi; \
	exit $$rc

# The browser checks drive Chromium with Playwright and audit pages with axe-core (npm packages,
# pinned in tests/site/package-lock.json).
SITE_NODE := tests/site/node_modules/.package-lock.json
$(SITE_NODE): tests/site/package.json tests/site/package-lock.json
	npm ci --prefix tests/site --no-audit --no-fund

# Checks on the built site and its PDF: every page exists, no broken references, math typeset
# offline, and in headless Chromium: console, page weight, code width, figures, accessibility.
sitecheck: html pdf $(SITE_NODE)
	$(TEST_ENV) $(BIN)/python -m pytest tests/site

# The whole book as one PDF: the single-page build, printed by headless Chromium once MathJax
# has typeset it (tests/site/browser.mjs pdf).
BOOK_PDF := _build/pdf/maf-course.pdf
pdf: install $(SITE_NODE)
	$(BIN)/jupyter-book build . --builder singlehtml -W -n --keep-going
	@# The single page links its assets relative to the build root, so it is printed from there.
	cp _build/singlehtml/chapters/intro.html _build/singlehtml/book.html
	@mkdir -p $(dir $(BOOK_PDF))
	node tests/site/browser.mjs pdf _build/singlehtml book.html $(BOOK_PDF)
	@echo "The book as a PDF: $(CURDIR)/$(BOOK_PDF)"

# ---------------------------------------------------------------- notebooks

# The copies students open (notebooks/): the chapters and exercises in plain Markdown, with
# the site's own numbers, so they need a site build first. The install cell goes in first.
notebooks: install
	$(BIN)/python tools/install_cell.py
	$(MAKE) html
	$(BIN)/python tools/plain_notebooks.py

# Every chapter and solution copied alone into an empty folder of a fresh Python without
# mafkit, installing it from a wheel of this checkout; times in _build/notebook-timing-alone.md.
anywhere: install
	$(BIN)/python -m pytest tests/anywhere -s

EXECUTE_CMD = $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	--ExecutePreprocessor.timeout=600 --ExecutePreprocessor.kernel_name=python3

execute: install
	@if [ -z "$(NB)" ]; then echo "usage: make execute NB=chapters/01_made.ipynb" >&2; exit 2; fi
	$(NB_ENV) $(EXECUTE_CMD) $(NB)

execute-all: install
	@if [ -z "$(NB_ALL)" ]; then echo "execute-all: no notebooks yet, nothing to do"; fi
	@for nb in $(NB_ALL); do \
	  echo "+ $(NB_ENV) $(EXECUTE_CMD) $$nb"; \
	  $(NB_ENV) $(EXECUTE_CMD) "$$nb" || exit 1; \
	done

# ---------------------------------------------------------------- classroom

# Student notebooks (exercises/NN_*.ipynb) and the grader's files (_build/assignments/) are
# generated from the source notebooks with otter-grader; see exercises/README.md.
assignments: install
	$(BIN)/python exercises/assign.py

# The site with every sphinx-exercise solution left out, in _build/nosolutions/_build/html.
html-nosolutions: install
	$(BIN)/python exercises/site_without_solutions.py _build/nosolutions

# ---------------------------------------------------------------- benchmarks (not part of test)

bench: install
	$(BIN)/python benchmarks/speed.py
	$(BIN)/python benchmarks/quality.py

bench-quick: install
	$(BIN)/python benchmarks/speed.py --quick

clean:
	rm -rf _build .pytest_cache .ruff_cache .hypothesis
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +
	@echo "(kept $(VENV); remove it with 'rm -rf $(VENV)' for a fresh install)"
