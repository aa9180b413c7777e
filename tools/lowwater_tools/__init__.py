"""lowwater host tools (CPython only): the `lowwater` command and its helpers.

Rooms (docs/architecture.md): boardio/ (check, run, vboard, deploy, flash, mpy,
size, fit), vboard/ (the virtual board itself), telemetry/ (LW1 parser, live
view, monitor, report, plot), reliability/ (soak, log), bench/, testing/ (pytest
markers), fleet/ (MQTT fleet view and exporter). cli.py is the command table.
"""

__version__ = "0.1.0"

from ._aliases import install as _install_aliases  # noqa: E402

_install_aliases()
