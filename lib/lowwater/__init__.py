# lowwater: sensor acquisition under a hard memory budget (on-device package).
# Submodules are imported on first use (`lowwater.ring`, ...) so a board only
# compiles what it uses; docs/distribution.md.
__version__ = "0.1.0"

# `from lowwater import *` binds only this: modules are imported by name, and
# on first use, so that a board compiles only what it runs.
__all__ = ("__version__",)


def __getattr__(name):
    # `lowwater.ring` imports lowwater/ring.py on first use, as micropython-async's
    # primitives package does. When that fails, the table of modules and
    # packages (lowwater/_packages.py, loaded only then) decides: a name that is
    # not a module is an AttributeError, so hasattr() and `from lowwater import *`
    # behave as on a plain module; an opt-in module that is not installed is an
    # ImportError that names its package.
    try:
        mod = __import__("lowwater." + name, None, None, (name,))
    except ImportError as e:
        from lowwater._packages import missing

        raise missing(name, e)
    globals()[name] = mod
    return mod
