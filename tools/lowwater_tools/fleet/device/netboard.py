# A networked virtual board (docs/fleet.md): the firmware (lowwater.app.main) on
# the MicroPython unix port, publishing to the broker of its profile's "mqtt"
# settings, its simulated sensor paced to the profile's rate_hz (SimSensor
# paced=True) so a board sends records at a board's pace, not the CPU's.
# LOWWATER_BOARD (profile path) and LOWWATER_CHUNKS (0 = until SIGINT) as for
# firmware/main.py; LOWWATER_PACED=0 unpaces the sensor. Started by
# lowwater_tools.fleet.vboards.
from lowwater import app
from lowwater.config import load
from lowwater.sensor import SimSensor

try:
    from os import getenv
except ImportError:
    getenv = None

_p = load(getenv("LOWWATER_BOARD"))
_s = _p["sensor"]
_paced = getenv("LOWWATER_PACED") != "0"  # 0: as fast as the process runs (bench)
app.main(sensor=SimSensor(_s["seed"], _s["width"], _s["rate_hz"], paced=_paced))
