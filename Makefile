# Two commands a newcomer needs: `make demo` and `make test`. Both bootstrap .venv themselves.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The compiled (numba) kernels (streamdrift/kernels.py), compiled once into numba's cache before
# anything uses them: seconds once, then a fraction of a second per process.
demo: $(STAMP)
	$(BIN)/python -m streamdrift.kernels
	$(BIN)/streamdrift demo

# Two pytest workers, a test file each at a time (its module fixtures stay in one process): the
# integration tests spend much of their time waiting on brokers and worker processes, so two run
# in 5-6 minutes what one runs in 9-10 on this 2-core machine.
test: $(STAMP)
	$(BIN)/python -m streamdrift.kernels
	$(BIN)/python -m pytest -n 2 --dist loadfile

bench: $(STAMP)
	$(BIN)/python scripts/bench_stream.py
	$(BIN)/python scripts/bench_batches.py
	$(BIN)/python scripts/bench_replay.py
	$(BIN)/python scripts/bench_core.py
	$(BIN)/python scripts/bench_quality.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info

.PHONY: lock config-reference image up replay down

# requirements.lock: exact pins of the runtime closure for the Docker image (CPython 3.11 like the image).
lock:
	$(PY) -c 'import sys; assert sys.version_info[:2] == (3, 11), "make lock needs CPython 3.11 (the image)"'
	rm -rf build/lock-venv
	$(PY) -m venv build/lock-venv
	build/lock-venv/bin/pip install --quiet .
	{ grep '^#' requirements.lock; build/lock-venv/bin/pip freeze --exclude streamdrift; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

config-reference: $(STAMP)
	$(BIN)/python scripts/config_reference.py

image:
	docker build -t streamdrift:local .

up:
	docker compose up -d --build

replay:
	docker compose --profile replay up replay

down:
	docker compose --profile replay down
