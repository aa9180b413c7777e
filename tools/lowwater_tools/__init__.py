"""lowwater host tools (CPython only): the `lowwater` command and its helpers."""

__version__ = "0.1.0"
