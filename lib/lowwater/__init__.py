# lowwater: sensor acquisition under a hard memory budget (on-device package).
# Submodules are imported on first use (`lowwater.ring`, ...) so a board only
# compiles what it uses; see docs/architecture.md.
__version__ = "0.1.0"


def __getattr__(name):
    # Lazy submodule import, as in micropython-async's primitives package.
    mod = __import__("lowwater." + name, None, None, (name,))
    globals()[name] = mod
    return mod
