# Everyday targets. Run `make help`. Assumes the venv from the README: .venv/
PYTHON ?= .venv/bin/python
BIN := $(dir $(PYTHON))

.PHONY: help install check lint typecheck test serve train evaluate variety bench ci

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

install:  ## create .venv and install sitrep with the dev tools
	python3 -m venv .venv && $(BIN)pip install -e '.[dev]'

check: lint typecheck test  ## everything a change must pass, short of the image test

lint:  ## ruff lint and format check
	$(BIN)ruff check service training tests bench deploy
	$(BIN)ruff format --check service training tests bench deploy

typecheck:  ## mypy --strict on service/ and training/
	$(BIN)mypy

test:  ## the whole test suite
	$(BIN)pytest

serve:  ## start the service on the bundled model
	$(BIN)sitrep serve

train:  ## retrain on the committed corpus into models/
	$(BIN)sitrep train --data data/train.jsonl --test data/test.jsonl --out models

evaluate:  ## score the newest model in models/ on the test split
	$(BIN)sitrep evaluate --model models --data data/test.jsonl

variety:  ## the corpus figures embedded in data/README.md
	$(BIN)python -m training.variety data/train.jsonl data/test.jsonl

bench:  ## serving benchmark against the plain predict_proba baseline
	$(BIN)python bench/run.py

ci:  ## what CI runs
	bash .ci/run
