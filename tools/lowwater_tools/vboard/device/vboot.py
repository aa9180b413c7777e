# lowwater vboard: boot script the MicroPython unix port runs (`micropython -i vboot.py ...`)
# to become a board: mount the littlefs image as /, install the `machine`
# stand-ins, run boot.py (and main.py in friendly mode), then fall into the REPL.
# argv: image block_count mode(friendly|raw) cause ctl_fd board freq rtc_offset_s
# Runs on MicroPython only; everything lives in _vb_boot() so __main__ stays clean.
import micropython

# No KeyboardInterrupt until / is the image: an interrupted boot would leave the
# host filesystem mounted. The relay also waits for "boot" before sending SIGINT.
micropython.kbd_intr(-1)


def _print_exception(e):
    # As a board prints it: without this script's own frame.
    import sys
    import io

    buf = io.StringIO()
    sys.print_exception(e, buf)
    for line in buf.getvalue().split("\n")[:-1]:
        if 'vboot.py"' not in line:
            print(line)


def _vb_boot():
    import sys
    import os
    import time

    argv = sys.argv
    image, blocks, mode, cause, ctl_fd, board, freq, rtc = argv[1:9]
    blocks = int(blocks)
    here = argv[0].rsplit("/", 1)[0]
    ctl = open("/proc/self/fd/" + ctl_fd, "wb")

    import gc

    sys.path.insert(0, here)
    import vb_sys

    gc.collect()  # compile garbage freed before more lasting objects come
    import vb_machine

    gc.collect()
    sys.path.pop(0)
    vb_machine._setup(ctl, cause, int(freq), board, rtc)
    sys.modules["machine"] = vb_machine
    del sys.modules["vb_machine"]
    # sys.stdout.buffer framed for the relay, which cooks \n -> \r\n as a board does
    vb_sys._setup(sys)
    sys.modules["sys"] = vb_sys
    del sys.modules["vb_sys"]

    class FileBlockDev:
        # A flash chip in a host file: 4096-byte erase blocks, littlefs's extended
        # block protocol (offset writes, explicit erase to 0xFF).
        def __init__(self, f, count):
            self.f = f
            self.count = count
            self.ff = b"\xff" * 256

        def readblocks(self, n, buf, off=0):
            self.f.seek(n * 4096 + off)
            self.f.readinto(buf)

        def writeblocks(self, n, buf, off=None):
            if off is None:  # simple protocol: erase then write whole blocks
                off = 0
            self.f.seek(n * 4096 + off)
            self.f.write(buf)

        def ioctl(self, op, arg):
            if op == 4:  # block count
                return self.count
            if op == 5:  # block size
                return 4096
            if op == 6:  # erase block `arg` to 0xFF, as flash does
                self.f.seek(arg * 4096)
                for _ in range(16):
                    self.f.write(self.ff)
            return 0

    try:
        bdev = FileBlockDev(open(image, "r+b"), blocks)
        try:
            vfs = os.VfsLfs2(bdev)
        except OSError:
            # First boot on an erased image: format it, as a board's _boot.py does.
            print("vboard: formatting the flash filesystem (littlefs2, %d blocks)" % blocks)
            os.VfsLfs2.mkfs(bdev)
            vfs = os.VfsLfs2(bdev)
        os.umount("/")
        os.mount(vfs, "/")
    except Exception as e:
        # The relay never forwards input before "boot": report and wait to be killed.
        print("vboard: boot failed:", repr(e))
        ctl.write(b"fail\n")
        return
    os.chdir("/")
    sys.path[:] = ["", ".frozen", "/lib"]
    argv[:] = []
    ctl.write(b"boot\n")

    g = globals()
    g.pop("__file__", None)  # a host path; boards have none
    names = ("boot.py", "main.py") if mode == "friendly" else ("boot.py",)
    micropython.kbd_intr(3)
    for name in names:
        try:
            f = open(name)
        except OSError:
            continue
        try:
            src = f.read()
            f.close()
            exec(compile(src, name, "exec"), g)
            src = None
        except SystemExit:
            # sys.exit() in boot.py/main.py asks for a soft reset, as on a board.
            ctl.write(b"reset soft\n")
            while True:
                time.sleep_ms(100)
        except BaseException as e:  # KeyboardInterrupt too: print it, go on to the REPL
            _print_exception(e)
    if mode == "raw":
        # The relay drops the friendly banner from here to the raw REPL banner.
        sys.stdout.write("\x1b]lowwater-vboard\x07")


_vb_boot()
del _vb_boot, _print_exception
del micropython
import gc

gc.collect()
del gc
