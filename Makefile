# `make test` and `make demo` work on a fresh machine: they create .venv and install what they need;
# `make test` also installs the system packages its tests drive (scripts/system-deps, apt-get as root).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup system-deps test lint demo bench realsuites clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

setup: $(BIN)/.installed

system-deps:
	scripts/system-deps

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src
	$(BIN)/lint-imports --no-cache
	$(BIN)/python scripts/architecture-diagram --check

test: system-deps lint
	$(BIN)/python -m pytest -W error::RuntimeWarning $(PYTEST_ARGS)

demo: setup
	$(BIN)/taskcast serve

bench: setup
	$(BIN)/python bench/engine.py --reps 5 --runs 50000
	$(BIN)/python bench/sqlite_writer.py
	$(BIN)/python bench/sse.py
	$(BIN)/python bench/shutdown.py --streams 1000 --grace 0 --shutdown-timeout 1
	$(BIN)/python bench/reconnect_storm.py
	$(BIN)/python bench/testkit.py
	$(BIN)/python bench/workflows.py --reps 3 --children 10000
	$(BIN)/python bench/tracing.py --runs 5000 --repeat 5
	$(BIN)/python bench/stats.py --runs 1000000 --recent 10000 --reps 7 --redis-runs 10000
	$(BIN)/python bench/time_and_order.py --due 100000 --margin 90
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	$(BIN)/python bench/redis_peers.py --n 10000 --reps 3 --pickups 300
	$(BIN)/python bench/redis_workflows.py --children 10000 --reps 3
	$(BIN)/python bench/steps.py --steps 1000 --overhead-steps 10000 --reps 5

# The test kit over real projects' suites (downloads their sdists); writes docs/testing.md.
realsuites: setup
	$(BIN)/python tests/testkit/real_suites/run.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
