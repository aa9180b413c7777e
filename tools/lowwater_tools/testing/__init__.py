"""Testing support for pytest: the memory markers (memory.py) and the script that
runs a marked test on MicroPython (mp_marker_runner.py, a data file run by the
unix port, not imported on the host)."""
