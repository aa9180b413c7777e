"""Telemetry on the host: the LW1 parser (lw1.py), the live view (live.py) and the
commands that read a board's telemetry: `lowwater monitor|report|plot`.

Names of lw1 stay importable from here (`from lowwater_tools.telemetry import
Parser`), as they were when this package was one module.
"""

from . import lw1


def __getattr__(name):
    return getattr(lw1, name)
