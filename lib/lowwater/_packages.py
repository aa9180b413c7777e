# lowwater._packages: every module of lib/lowwater and the package that
# installs it. "" is the base package `lowwater` (package.json, manifest.py);
# an opt-in package `lowwater-X` has its own package-X.json and manifest-X.py
# (docs/distribution.md). This table is the one place that says so:
# `lowwater mpy --package-json` generates the package files from it, and
# host_tests/test_distribution.py checks that every file of lib/lowwater is in
# exactly one package. A new module is one line here.
#
# The board imports this module only when lowwater.__getattr__ cannot import a
# name (to tell an unknown name from an opt-in module that is not installed),
# so a firmware that imports what it has never loads the table (the table in
# lowwater/__init__.py cost ~0.9 KB of heap after the firmware's imports on the
# unix port).
MODULES = {
    "_bytering": "",
    "_compat": "",
    "_handlers": "",
    "_keyindex": "",
    "_packages": "",
    "_viper": "",
    "app": "",
    "budget": "",
    "config": "",
    "pipeline": "",
    "pool": "",
    "process": "",
    "ring": "",
    "sensor": "",
    "startup": "",
    "store": "",
    "telemetry": "",
    "window": "",
    "flashlog": "lowwater-flashlog",
    "mqtt": "lowwater-mqtt",
    "mqttlink": "lowwater-mqtt",
    "prof": "lowwater-prof",
}


def missing(name, err):
    """The exception for `lowwater.<name>` when importing it raised `err`:
    AttributeError for a name that is not a module here, an ImportError that
    names the package for an opt-in module that is not installed, else err."""
    pkg = MODULES.get(name)
    if pkg is None:
        return AttributeError(name)
    msg = str(err)
    # Only when the module itself is missing, not an import inside it.
    if pkg and ("lowwater." + name) in msg and ("lowwater." + name + ".") not in msg:
        return ImportError("lowwater.%s is in the opt-in package %s: install it (docs/distribution.md)" % (name, pkg))
    return err
