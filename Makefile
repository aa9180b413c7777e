# lowwater: the two commands (make run, make test) and friends.
# Every target sets up .venv first when it is missing or pyproject.toml changed.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
BOARD  ?= unix
CHUNKS ?= 2000

.PHONY: run test setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# Run the firmware on a virtual board (the MicroPython unix port with the
# board's heap). CHUNKS=N bounds the run (0 = until Ctrl-C); BOARD=name picks a profile.
run: $(STAMP)
	$(VENV)/bin/lowwater run --board $(BOARD) --chunks $(CHUNKS)

# The whole suite: every portable test on CPython and on MicroPython.
test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build .pytest_cache .hypothesis
