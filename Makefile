# lowwater: the two commands (make run, make test) and friends.
# Every target sets up .venv first when it is missing or pyproject.toml changed.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
LW     := $(VENV)/bin/lowwater
STAMP  := $(VENV)/.installed
BOARD  ?= unix
# make run: seconds to watch the virtual board (DURATION= runs until Ctrl-C).
DURATION ?= 10
# make run-unix: chunks to run on the bare unix port (0 = until Ctrl-C).
CHUNKS ?= 2000

.PHONY: setup run run-unix test bench soak fit mpy size lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# Run the firmware on a virtual board (docs/vboard.md): start it with the
# board's heap and littlefs flash, deploy lib/ + firmware/ + the profile with
# `lowwater deploy`, watch it with `lowwater monitor`, print the summary.
run: $(STAMP)
	$(LW) vboard --board $(BOARD) --deploy --monitor $(if $(DURATION),--duration $(DURATION))

# The firmware straight on the unix port (no pty, no flash): a bounded run.
run-unix: $(STAMP)
	$(LW) run --board $(BOARD) --chunks $(CHUNKS)

# The whole suite: every portable test on CPython and on MicroPython.
test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

# Benchmarks: ratios measured side by side (docs/performance.md).
bench: $(STAMP)
	$(LW) bench

# Long soak and power-loss run (docs/reliability.md).
soak: $(STAMP)
	$(LW) soak --board $(BOARD)

# Smallest unix-port heap the firmware runs in, and the margin (docs/fit.md).
fit: $(STAMP)
	$(LW) fit --board $(BOARD) --mpy

# .mpy build of lib/ (docs/distribution.md).
mpy: $(STAMP)
	$(LW) mpy

# Library size budget: .mpy bytes and heap after import.
size: $(STAMP)
	$(LW) size

clean:
	rm -rf $(VENV) build .pytest_cache .hypothesis
