# One-command entry points. Each target sets up .venv on first use (torch CPU build first,
# then hippograph with its extras), so `make demo` and `make test` work on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO_INDEX ?= .demo-index
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install demo test test-fast eval eval-quick clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# CPU build of torch first: an unpinned torch would pull a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dense,dev]'
	touch $(STAMP)

install: $(STAMP)

## Index the bundled sample corpus and run a few multi-hop questions.
demo: $(STAMP)
	$(VENV)/bin/hippograph index data/corpus --index $(DEMO_INDEX) --overwrite
	$(VENV)/bin/hippograph info $(DEMO_INDEX) --triples 8
	$(PY) -m hippograph.demo $(DEMO_INDEX) data/questions.jsonl

## The full test suite (real spaCy model and MiniLM included).
test: $(STAMP)
	$(PY) -m pytest -q

## Skip the real-model tests (seconds instead of minutes).
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

## Full benchmark run over the shared datasets (see eval/RESULTS.md).
eval: $(STAMP)
	$(PY) -m eval run --datasets musique_train100,hotpotqa_train100,scifact,locomo,2wiki_dev300 --out eval/results/

eval-quick: $(STAMP)
	$(PY) -m eval run --quick --out eval/results/quick/

clean:
	rm -rf $(DEMO_INDEX) .pytest_cache build *.egg-info
