# The two commands of the README: `make bench` (set up, run the default matrix, save it) and `make test`;
# CI also runs `make smoke` (the CPU budgets).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
NAME ?= run
BENCH_ARGS ?=

.PHONY: setup lint bench test smoke smoke-baseline mutate clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	touch $@

setup: $(VENV)/.installed

$(VENV)/.dev-installed: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

# Lint and types (pyproject.toml): ruff's rules everywhere, its format check and mypy on fixtures/ (scripts and
# benchmarks are formatted too). Part of `make test`.
lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check fixtures benchmarks scripts conftest.py
	$(VENV)/bin/mypy

# The main job: every model x input x device present x scope, saved under .benchmarks/ as NNNN_$(NAME).json (with
# the per-round samples the regression gate and the report history need; --bench-save-samples off leaves them out).
bench: setup
	$(PY) -m pytest benchmarks/ --benchmark-save=$(NAME) $(BENCH_ARGS)

# The suite's own tests (tiny inputs; CUDA tests skip without a GPU), on two pytest-xdist workers: most of their time
# is pytest subprocesses importing torch, which two cores share well (about 8 min here on two workers: 751 tests). The lint
# and type checks run first.
TEST_ARGS ?= -n 2
test: lint
	$(PY) -m pytest tests/ $(TEST_ARGS)

# CI's gate: a small matrix on one CPU thread (steady on a shared 2-core box) against budgets/cpu-smoke.toml, strict
# (a budgets entry matching no case, or an ungated case, fails the run), and with BASELINE=NAME against a saved run
# (`make smoke-baseline BASELINE=NAME` saves one). Its group runs until every case can show a 15% slowdown alone, or
# for its 120 s time budget (relu, a 0.4 ms stage whose rounds spread by 28%, needs about 170 rounds). Any non-zero
# pytest exit fails the target, 5 (nothing collected) included. The JSON is kept for the CI artifacts.
SMOKE_ARGS ?= --bench-devices cpu --bench-models resnet18 --bench-inputs pascal --bench-threads 1 --bench-time-budget 120
SMOKE_GATES ?= --bench-budgets budgets/cpu-smoke.toml --bench-strict-gate on
BASELINE ?=
smoke: setup
	mkdir -p reports
	$(PY) -m pytest benchmarks/ $(SMOKE_ARGS) $(SMOKE_GATES) --benchmark-json reports/smoke.json $(if $(BASELINE),--bench-regression=$(BASELINE))

smoke-baseline: setup
	$(PY) -m pytest benchmarks/ $(SMOKE_ARGS) --benchmark-save=$(or $(BASELINE),smoke)

# Mutation testing of the gates (not run in CI; about an hour on the 2-core box): mutmut changes fixtures/regression.py,
# budgets.py, verdicts.py, measurement.py, json_contract.py and runner.py one change at a time (setup.cfg [mutmut]) and runs the in-process
# tests that reach each change. The counts land in mutants/mutmut-cicd-stats.json; the survivors are listed last.
mutate: $(VENV)/.dev-installed
	$(VENV)/bin/mutmut run --max-children 2
	$(VENV)/bin/mutmut export-cicd-stats
	$(VENV)/bin/mutmut results

clean:
	rm -rf .benchmarks reports .pytest_cache mutants
