"""Portable tests: every test here runs on CPython, the 64-bit unix port and the
32-bit runtime, through the installed `lowwater` pytest plugin (configured in
pyproject.toml: lowwater_portable = host_tests/portable, lowwater_path = lib).

Nothing is defined here: the plugin makes the three items per test
(`[cpython]`, `[micropython]`, `[micropython32]`), reads a module's MP_HEAP /
MP_HEAP32 / MP_TIMEOUT / MEMORY_MARKS, and reports a MicroPython traceback as
the failure. See docs/plugin.md and docs/testing.md.
"""
