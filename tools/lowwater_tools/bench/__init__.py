"""The benchmark suite behind `lowwater bench` / `make bench` (issue 7).

driver.py (host, CPython) runs the scripts mp_*.py on the MicroPython unix port
(and mp_rings.py on CPython too), each in a fresh interpreter with lib/
importable, and turns their raw side-by-side times into the table and JSON of
docs/performance.md. The mp_*.py files are scripts, not modules of this
package: they run on both runtimes and share _bt.py.
"""
