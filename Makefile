# habc-rig: every target installs what it needs first (scripts/bootstrap.sh is idempotent).
SHELL := /bin/bash
ENV := source scripts/env.sh >/dev/null &&
PYTEST_ARGS ?= -m "not slow and not hardware and not lerobot"

.PHONY: setup test lint demo bench faults benchmark benchmark-pixel lerobot-env test-lerobot lerobot-demo clean

setup:
	bash scripts/bootstrap.sh

LINT_PATHS := src tests scripts launch bench faults conftest.py

lint: setup
	$(ENV) ruff check $(LINT_PATHS)
	$(ENV) ruff format --check $(LINT_PATHS)

test: setup
	$(ENV) ruff check $(LINT_PATHS)
	$(ENV) ruff format --check $(LINT_PATHS)
	$(ENV) python -m pytest $(PYTEST_ARGS) || { rc=$$?; \
	  if [ -s log/pytest-hang.txt ] && [ "$$(wc -l < log/pytest-hang.txt)" -gt 1 ]; then \
	    tail -n 40 log/pytest-hang.txt; head -n 1 log/pytest-hang.txt; fi; exit $$rc; }

demo: setup
	$(ENV) bash scripts/demo.sh

bench: setup
	$(ENV) bash scripts/bench.sh

# Every fault injected many times (bag cuts, kills, byte flips, unplugged pedal, ...):
# writes docs/reliability.md. `make test` runs a few trials of each (tests/test_faults.py).
faults: setup
	$(ENV) python -m faults.run $(FAULTS_ARGS)

# The paper's protocol on the simulated rig (issue 7): writes docs/results.md; resumable.
benchmark: setup
	$(ENV) habc-benchmark --preset cpu --tracks state $(BENCHMARK_ARGS)

# SFT vs HABC from camera images (3 protocol seeds, ~37 min of one core each, mostly image SFT).
benchmark-pixel: setup
	$(ENV) habc-benchmark --preset cpu --tracks pixel $(BENCHMARK_ARGS)

# LeRobot in its own venv (Python 3.12, torch 2.11: a CUDA build of ~2.2 GB the first time);
# the trainer runs there from the source tree. Its tests are not part of `make test`.
LEROBOT_VENV ?= .venv-lerobot
lerobot-env:
	HABC_LEROBOT_VENV=$(LEROBOT_VENV) bash scripts/lerobot_env.sh

# A tiny SmolVLA through the loop: pixel demos -> SFT + HABC in the LeRobot venv -> served ->
# one episode of the ROS graph on the sim rig (scripts/lerobot_e2e.sh).
lerobot-demo: setup lerobot-env
	$(ENV) HABC_LEROBOT_VENV=$(LEROBOT_VENV) bash scripts/lerobot_e2e.sh

test-lerobot: lerobot-env
	$(LEROBOT_VENV)/bin/python -m pytest -m lerobot -p no:cacheprovider src/habc_trainer/test/test_lerobot_*.py

clean:
	rm -rf build install log
