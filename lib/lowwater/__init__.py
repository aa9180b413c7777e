# lowwater: sensor acquisition under a hard memory budget (on-device package).
# Submodules are imported on first use (`lowwater.ring`, ...) so a board only
# compiles what it uses; docs/distribution.md.
__version__ = "0.1.0"

# `from lowwater import *` binds only this: modules are imported by name, and
# on first use, so that a board compiles only what it runs.
__all__ = ("__version__",)

# Every module of lib/lowwater and the package that installs it: "" is the base
# package `lowwater` (package.json, manifest.py); an opt-in package `lowwater-X`
# has its own package-X.json and manifest-X.py. This table is the one place
# that says so: `lowwater mpy --package-json` generates the package files from
# it and host_tests/test_distribution.py checks that every file of lib/lowwater
# is in exactly one package. A new module is one line here.
_MODULES = {
    "_compat": "",
    "_viper": "",
    "app": "",
    "budget": "",
    "config": "",
    "pool": "",
    "process": "",
    "ring": "",
    "sensor": "",
    "store": "",
    "telemetry": "",
    "window": "",
    "flashlog": "lowwater-flashlog",
    "mqtt": "lowwater-mqtt",
    "mqttlink": "lowwater-mqtt",
    "prof": "lowwater-prof",
}


def __getattr__(name):
    # `lowwater.ring` imports lowwater/ring.py on first use, as micropython-async's
    # primitives package does; any name not in the table is an AttributeError,
    # so hasattr() and `from lowwater import *` behave as on a plain module.
    pkg = _MODULES.get(name)
    if pkg is None:
        raise AttributeError(name)
    try:
        mod = __import__("lowwater." + name, None, None, (name,))
    except ImportError as e:
        # Only when the module itself is missing, not an import inside it.
        if pkg and ("lowwater." + name) in str(e) and ("lowwater." + name + ".") not in str(e):
            raise ImportError(
                "lowwater.%s is in the opt-in package %s: install it (docs/distribution.md)" % (name, pkg)
            )
        raise
    globals()[name] = mod
    return mod
