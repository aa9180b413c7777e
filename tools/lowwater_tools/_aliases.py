"""Old module names of lowwater_tools, kept importable for one release (0.1.x).

Until 0.2 the host tools were flat modules (lowwater_tools.deploy,
lowwater_tools.cmd_run, ...). They now live in rooms by concern; importing an
old name gives the new module itself (same object, so patching works) and a
DeprecationWarning that names the new place.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

OLD_TO_NEW = {
    "cmd_check": "boardio.check",
    "cmd_run": "boardio.run",
    "deploy": "boardio.deploy",
    "cmd_deploy": "boardio.deploy",
    "flash": "boardio.flash",
    "cmd_flash": "boardio.flash",
    "uf2": "boardio.uf2",
    "cmd_mpy": "boardio.mpy",
    "mpybuild": "boardio.mpybuild",
    "cmd_size": "boardio.size",
    "cmd_fit": "boardio.fit",
    "cmd_vboard": "boardio.vboard",
    "live": "telemetry.live",
    "cmd_monitor": "telemetry.monitor",
    "cmd_report": "telemetry.report",
    "plot": "telemetry.plot",
    "cmd_plot": "telemetry.plot",
    "soak": "reliability.soak",
    "cmd_soak": "reliability.soak",
    "logread": "reliability.log",
    "cmd_log": "reliability.log",
    "cmd_bench": "bench.bench",
    "pytest_memory": "testing.memory",
}
_PREFIX = __package__ + "."


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        if fullname.startswith(_PREFIX) and fullname[len(_PREFIX) :] in OLD_TO_NEW:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        new = _PREFIX + OLD_TO_NEW[spec.name[len(_PREFIX) :]]
        warnings.warn(f"{spec.name} is now {new}", DeprecationWarning, stacklevel=3)
        return importlib.import_module(new)

    def exec_module(self, module):
        pass  # the new module is already loaded


def install() -> None:
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())
