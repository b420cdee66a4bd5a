# The two commands of the README: `make bench` (set up, run the default matrix, save it) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
NAME ?= run
BENCH_ARGS ?=

.PHONY: setup bench test clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	touch $@

setup: $(VENV)/.installed

# The main job: every model x input x device present x scope, saved under .benchmarks/ as NNNN_$(NAME).json.
bench: setup
	$(PY) -m pytest benchmarks/ --benchmark-save=$(NAME) $(BENCH_ARGS)

# The suite's own tests (tiny inputs; CUDA tests skip without a GPU).
test: setup
	$(PY) -m pytest tests/

clean:
	rm -rf .benchmarks reports .pytest_cache
