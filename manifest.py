# manifest.py: freeze the lowwater library into a MicroPython firmware image.
#
# In a port's board manifest (e.g. ports/rp2/boards/RPI_PICO/manifest.py or your
# own FROZEN_MANIFEST), after the port's own include:
#     include("$(PORT_DIR)/boards/manifest.py")
#     include("/path/to/lowwater/manifest.py")
# The port's mpy-cross compiles lib/lowwater for the board's arch, so the viper
# module (lowwater/_viper.py) gets native code for that chip. Frozen modules run
# from flash: their bytecode costs no heap. boot.py, main.py and board.json stay
# on the filesystem (lowwater deploy, or mip with package-firmware.json).
# docs/distribution.md.
metadata(description="Sensor acquisition under a hard memory budget", version="0.1.0", license="MIT")

package("lowwater", base_path="lib")
