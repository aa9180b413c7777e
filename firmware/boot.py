# boot.py: runs first on every (soft) reset. Keep it minimal.
import micropython

# Room for a traceback from an IRQ handler or a MemoryError (house style).
try:
    micropython.alloc_emergency_exception_buf(100)
except AttributeError:  # the unix port has no emergency buffer
    pass
