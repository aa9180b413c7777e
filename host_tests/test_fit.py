"""`lowwater fit`: judging a run from its telemetry, the bisection, and the whole command
against stand-in firmware scripts (so it does not depend on firmware/main.py), on
the 32-bit runtime and the 64-bit unix port side by side; and the real firmware's
modelled figure against its 32-bit measurement."""

from __future__ import annotations

import json
import math
import time

import pytest

from lowwater_tools import boards, cli
from lowwater_tools.boardio import fit as cmd_fit
from lowwater_tools.boardio.fit import Trial, bisect, judge, run_trial
from lowwater_tools.errors import UserError
from lowwater.config import UNIX_HEAP_FACTOR  # lib/ is on sys.path (conftest.py)

# Heap bisections on two runtimes: make test-long (CI runs it).
pytestmark = pytest.mark.slow

END = (
    b"LW1 end t=9 chunks=3 processed=3 dropped=0 errors=0 lw=5000 gc_max_us=1 gc_mean_us=1 checks=1 warn=0 critical=0\n"
)
BOOT = b"LW1 boot t=0 board=esp32 heap=165000 warn=43008 min=21504 chunk=256 count=8 ver=0.1.0\n"


def mem(free, lvl):
    return b"LW1 mem t=5 n=1 free=%d alloc=100 lw=%d lvl=%s gc_us=3\n" % (free, free, lvl.encode())


# --- judging one run -------------------------------------------------------------------


def test_judge_passes_a_clean_run():
    assert judge(0, BOOT + mem(9000, "ok") + mem(7000, "warn") + END) == (True, "ok", 5000)


def test_judge_fails_on_memory_error_critical_exit_or_no_end():
    trace = b"Traceback (most recent call last):\nMemoryError: memory allocation failed, allocating 800 bytes\n"
    assert judge(1, BOOT + trace)[:2] == (False, "MemoryError")
    assert judge(0, BOOT + mem(900, "critical") + END) == (False, "critical", 5000)
    assert judge(0, BOOT + b"LW1 lvl t=3 from=warn to=critical free=100\n" + END)[:2] == (False, "critical")
    assert judge(0, BOOT + END.replace(b"critical=0", b"critical=2"))[:2] == (False, "critical")
    assert judge(2, BOOT + END)[:2] == (False, "exit 2")
    assert judge(0, BOOT + mem(4000, "ok")) == (False, "no end record", 4000)
    # noise around records is not a record
    assert judge(0, b"MPY: soft reboot\n" + BOOT + b">>> " + END)[0] is True


# --- bisection -------------------------------------------------------------------------


def fake(threshold):
    calls = []

    def trial(heap):
        calls.append(heap)
        ok = heap >= threshold
        return Trial(heap, ok, "ok" if ok else "MemoryError", None, 0 if ok else 1, 0.0)

    return trial, calls


@pytest.mark.parametrize("threshold", [16385, 50_000, 77_777, 199_999, 200_000])
def test_bisection_finds_the_threshold_to_the_resolution(threshold):
    trial, calls = fake(threshold)
    found, trials = bisect(trial, 16384, 200_000, 1024)
    assert threshold <= found <= threshold + 1024
    assert len(trials) == len(calls) <= 2 + math.ceil(math.log2((200_000 - 16384) / 1024)) + 1
    assert trial(found).ok and not trial(found - 1024).ok


def test_a_failure_above_the_answer_restarts_the_search():
    """A pocket of passing heaps below the real threshold (as fragmentation makes
    near the edge) is caught by the confirmation steps."""

    def trial(heap):
        ok = heap >= 150_000 or 107_000 <= heap < 108_500
        return Trial(heap, ok, "ok" if ok else "MemoryError", None, 0, 0.0)

    found, trials = bisect(trial, 16384, 200_000, 1024, confirm=0)
    assert 107_000 <= found < 108_500  # bisection alone lands in the pocket
    found, trials = bisect(trial, 16384, 200_000, 1024, confirm=4)
    assert 150_000 <= found <= 151_024
    assert all(trial(found + k * 1024).ok for k in range(5)) and not trial(found - 1024).ok
    assert len({t.heap for t in trials}) == len(trials)  # no heap tried twice


def test_bisection_edges():
    trial, _ = fake(10_000)
    assert bisect(trial, 16384, 65536)[0] == 16384  # already runs at --lo
    trial, _ = fake(100_000)
    with pytest.raises(UserError, match="fails even on a 65536 B heap"):
        bisect(trial, 16384, 65536)
    with pytest.raises(UserError, match="--lo <= --hi"):
        bisect(trial, 70000, 65536)


# --- the command, on stand-in firmware ------------------------------------------------

# Needs a NEED-byte buffer (MemoryError below that) and reports critical when less
# than CRIT bytes stay free after it; checks the environment `fit` promises.
FAKE_MAIN = """\
import gc, os, sys
from lowwater.config import load
p = load(os.getenv("LOWWATER_BOARD"))
n = int(os.getenv("LOWWATER_CHUNKS"))
if p["sensor"]["kind"] != "sim":
    raise SystemExit("no ADC on the unix port")
print("LW1 boot t=0 board=%s heap=%d warn=1 min=1 chunk=1 count=1 ver=0" % (p["name"], p["heap"]))
buf = bytearray({need})
gc.collect()
free = gc.mem_free()
lvl = "critical" if free < {crit} else "ok"
print("LW1 mem t=1 n=1 free=%d alloc=%d lw=%d lvl=%s gc_us=1" % (free, gc.mem_alloc(), free, lvl))
print("LW1 end t=2 chunks=%d processed=%d dropped=0 errors=0 lw=%d gc_max_us=1 gc_mean_us=1 checks=1 warn=0 critical=%d"
      % (n, n, free, lvl == "critical"))
"""
NEED, CRIT = 20_000, 40_000


@pytest.fixture
def fake_main(tmp_path):
    f = tmp_path / "main.py"
    f.write_text(FAKE_MAIN.format(need=NEED, crit=CRIT))
    return f


def fit_json(capsys, *args):
    assert cli.main(["fit", *args, "--json"]) == 0
    cap = capsys.readouterr()
    return json.loads(cap.out), cap.err


def test_fit_finds_the_smallest_heap_of_a_stand_in(fake_main, capsys, tmp_path):
    res, progress = fit_json(
        capsys, "--board", "esp32", "--main", str(fake_main), "--chunks", "3", "--lo", "16384", "--hi", "262144"
    )
    h = res["heap_min_unix"]
    assert NEED + CRIT < h < NEED + CRIT + 40_000
    # the answer is exact to the resolution: it runs at h, not 1 KiB lower
    prof = tmp_path / "esp32.json"
    prof.write_text(json.dumps(cmd_fit.unix_profile(boards.load("esp32"))[0]))
    assert run_trial(fake_main, prof, h, 3, 30).ok
    below = run_trial(fake_main, prof, h - 1024, 3, 30)
    assert not below.ok and below.reason == "critical"
    reasons = {t["reason"] for t in res["trials"]}
    assert {"ok", "MemoryError", "critical"} <= reasons
    # one progress line per trial of each runtime, on stderr with --json
    lines = progress.splitlines()
    assert sum(line.startswith("[unix]   trial ") for line in lines) == len(res["trials"])
    assert sum(line.startswith("[32-bit] trial ") for line in lines) == len(res["trials_32"])
    # measured on the 32-bit runtime: the board's bytes, no factor
    h32 = res["heap_min_32"]
    assert NEED + CRIT < h32 < NEED + CRIT + 40_000 and h32 < h
    assert res["board_heap_32"] == 110000 and res["margin_32"] == 110000 - h32
    assert run_trial(fake_main, prof, h32, 3, 30, runtime="wasm32").ok
    assert not run_trial(fake_main, prof, h32 - 1024, 3, 30, runtime="wasm32").ok
    assert res["ratio_64_32"] == round(h / h32, 3) and res["runtimes"] == ["wasm32", "unix"]
    # the model ran the same code as the 32-bit runtime (the twins); the viper
    # firmware is its own bisection (the stand-in has no viper: the same answer, to the resolution)
    assert res["unix_code"] == "twins" and [r["code"] for r in res["runs"]] == ["twins", "twins", "viper"]
    assert sum(line.startswith("[viper]  trial ") for line in lines) == len(res["trials_viper"])
    assert abs(res["heap_min_unix_viper"] - h) <= 1024
    assert res["viper_saves_unix"] == h - res["heap_min_unix_viper"]
    assert res["heap_min_board_viper"] == math.ceil(res["heap_min_unix_viper"] / UNIX_HEAP_FACTOR)
    # the 32-bit board -> 64-bit unix mapping
    k = UNIX_HEAP_FACTOR
    assert res["factor"] == k and res["board_word_bits"] == 32 and res["unix_word_bits"] == 64
    assert res["board_heap_unix"] == int(110000 * k)
    assert res["heap_min_board"] == math.ceil(h / k)
    assert res["margin_board"] == 110000 - res["heap_min_board"]
    assert res["margin_unix"] == res["board_heap_unix"] - h
    assert res["sensor_substituted"] is True  # esp32's ADC ran as the sim sensor


def test_fit_text_report_states_the_mapping(fake_main, capsys):
    assert (
        cli.main(
            [
                "fit",
                "--board",
                "rp2040",
                "--main",
                str(fake_main),
                "--chunks",
                "2",
                "--lo",
                "32768",
                "--hi",
                "131072",
                "--resolution",
                "4096",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert sum(line.startswith("[unix]   trial ") for line in out.splitlines()) >= 3
    assert sum(line.startswith("[32-bit] trial ") for line in out.splitlines()) >= 3
    k = UNIX_HEAP_FACTOR
    assert f"x {k}" in out and "UNIX_HEAP_FACTOR" in out and f"209936 B on the board = {int(209936 * k)} B here" in out
    assert "margin:" in out and "DOES NOT FIT" not in out
    assert "measured on the 32-bit runtime: " in out and "the board's heap, no factor: 209936 B" in out
    assert "model vs measurement (the same code, the twins): " in out and "64/32-bit ratio" in out
    assert "with viper on the unix port" in out and "viper against the twins: " in out


@pytest.mark.parametrize("runtime", ["unix", "wasm32"])
def test_fit_on_one_runtime_only(fake_main, capsys, runtime):
    res, progress = fit_json(
        capsys,
        "--board",
        "esp32",
        "--main",
        str(fake_main),
        "--chunks",
        "2",
        "--resolution",
        "4096",
        "--runtime",
        runtime,
    )
    assert res["runtimes"] == [runtime]
    assert ("heap_min_unix" in res) == (runtime == "unix") and ("heap_min_32" in res) == (runtime == "wasm32")
    assert "ratio_64_32" not in res and "[32-bit]" not in progress and "[unix]" not in progress
    assert "heap_min_unix_viper" not in res and "[viper]" not in progress
    if runtime == "unix":  # the firmware as deployed: viper
        assert res["unix_code"] == "viper"


def test_fit_unix_twins_and_the_twins_lib(fake_main, capsys, tmp_path):
    res, _ = fit_json(
        capsys,
        "--board",
        "esp32",
        "--main",
        str(fake_main),
        "--chunks",
        "2",
        "--resolution",
        "4096",
        "--runtime",
        "unix",
        "--twins",
    )
    assert res["unix_code"] == "twins" and "ratio_64_32" not in res
    lib = cmd_fit.twins_lib(tmp_path / "src")
    assert (lib / "lowwater" / "process.py").is_file() and not (lib / "lowwater" / "_viper.py").exists()


def test_fit_on_a_64_bit_board_needs_no_mapping(fake_main, capsys):
    res, _ = fit_json(capsys, "--board", "unix", "--main", str(fake_main), "--chunks", "2", "--resolution", "8192")
    assert res["factor"] == 1.0 and res["heap_min_board"] == res["heap_min_unix"]
    # the 64-bit profile on the 32-bit runtime: mapped down, as the firmware maps its thresholds
    assert res["board_heap_32"] == int(131072 / UNIX_HEAP_FACTOR)
    assert res["margin_board"] == 131072 - res["heap_min_unix"]
    assert res["sensor_substituted"] is False


def test_each_trial_is_bounded(tmp_path):
    hang = tmp_path / "hang.py"
    hang.write_text("print('LW1 boot t=0')\nwhile True:\n    pass\n")
    t0 = time.monotonic()
    t = run_trial(hang, boards.profile_path("unix"), 65536, 1, 1.0)
    assert time.monotonic() - t0 < 10
    assert (t.ok, t.reason) == (False, "timeout")


def test_fit_user_errors(tmp_path, fake_main, capsys):
    assert cli.main(["fit", "--board", "unix", "--main", str(tmp_path / "none.py")]) == 1
    assert "not found" in capsys.readouterr().err
    assert cli.main(["fit", "--board", "unix", "--main", str(fake_main), "--hi", "40000", "--chunks", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lowwater: the firmware fails even on a 40000 B heap (MemoryError")
    assert err.count("\n") == 1


def test_fit_with_mpy_imports_precompiled_lib(fake_main, capsys, tmp_path):
    lib = cmd_fit.compile_lib(tmp_path / "lib")
    assert (lib / "lowwater" / "config.mpy").is_file() and not list(lib.rglob("*.py"))
    # for the 32-bit runtime: bytecode only, no native _viper (it could not load)
    lib32 = cmd_fit.compile_lib(tmp_path / "lib32", "wasm32")
    assert (lib32 / "lowwater" / "config.mpy").is_file() and not (lib32 / "lowwater" / "_viper.mpy").exists()
    # and for the unix port's model run, the same bytecode without _viper
    twins = cmd_fit.compile_lib(tmp_path / "twins", "unix", "twins")
    assert (twins / "lowwater" / "config.mpy").is_file() and not (twins / "lowwater" / "_viper.mpy").exists()
    assert (lib / "lowwater" / "_viper.mpy").is_file()
    res, _ = fit_json(
        capsys, "--board", "esp32", "--main", str(fake_main), "--chunks", "2", "--mpy", "--resolution", "4096"
    )
    assert res["mpy"] is True and NEED + CRIT < res["heap_min_unix"] and NEED + CRIT < res["heap_min_32"]
    assert res["below_reason"] in ("critical", "MemoryError")


# --- the real firmware: the model against the 32-bit measurement ---------------------


@pytest.fixture(scope="module")
def firmware_fit():
    """One `lowwater fit --board esp32 --mpy` of the real firmware (fewer chunks
    than the command's default keep it short; the steady state is reached well
    before), shared by the tests below."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert cli.main(["fit", "--board", "esp32", "--mpy", "--chunks", "600", "--confirm", "2", "--json"]) == 0
    return json.loads(out.getvalue())


def test_the_firmware_fits_the_board_on_the_32_bit_runtime_like_with_like(firmware_fit):
    """The model ran the same code as the 32-bit runtime (the twins: no viper
    there), the viper firmware is its own figure, and the board fits."""
    res = firmware_fit
    assert res["unix_code"] == "twins" and "heap_min_unix_viper" in res and "viper_saves_unix" in res
    assert res["margin_32"] > 0 and res["below_reason_32"] in ("critical", "MemoryError")
    assert res["margin_board_viper"] > 0


# Not strict: on esp32 the unix port's answer is bound by the start-up peak (a
# MemoryError while the firmware is built), not by the steady state the 32-bit
# answer is bound by, so a change to start-up alone moves the model across the
# tolerance either way. An XPASS is shown in the summary; rerun `lowwater fit`
# for both boards before removing the mark (docs/fit.md).
@pytest.mark.xfail(
    strict=False,
    raises=AssertionError,
    reason="model misses on the committed firmware of 2026-12-02 (docs/fit.md): esp32 --mpy, the twins "
    "on both runtimes, 2000 chunks: 71,452 B modelled (unix 100,032 / 1.4) vs 78,336 B measured, -8.8 % "
    "(rp2040 -10.8 %). Not viper (viper vs the twins: 0 B): main() drops lowwater.startup/config after "
    "start, which frees them on the unix port and frees nothing on the 32-bit runtime; held on both, the "
    "model is within 1.0 % (next test)",
)
def test_the_modelled_firmware_figure_agrees_with_the_32_bit_measurement(firmware_fit):
    """The unix port's answer / UNIX_HEAP_FACTOR is within MODEL_TOLERANCE_PCT of the
    smallest heap measured on the 32-bit runtime, for the firmware as deployed
    (.mpy) with the same code on both (the twins), on the smallest board."""
    res = firmware_fit
    assert res["model_agrees"], (res["heap_min_board"], res["heap_min_32"], res["model_vs_32_pct"])
    assert abs(res["model_vs_32_pct"]) <= cmd_fit.MODEL_TOLERANCE_PCT


def test_the_heap_factor_holds_for_the_firmware_with_the_same_live_objects(capsys, tmp_path):
    """The word-size model alone: the firmware with its boot-time modules held on
    both runtimes (imported before main(), so main() keeps them), so both hold the
    same objects; the modelled board figure is within MODEL_TOLERANCE_PCT of the
    32-bit measurement and the firmware's 64/32 ratio is near the factor."""
    main = tmp_path / "main.py"
    main.write_text("import lowwater.startup, lowwater.config\nfrom lowwater import app\n\napp.main()\n")
    res, _ = fit_json(capsys, "--board", "esp32", "--mpy", "--chunks", "600", "--confirm", "2", "--main", str(main))
    assert res["unix_code"] == "twins"
    assert res["model_agrees"], (res["heap_min_board"], res["heap_min_32"], res["model_vs_32_pct"])
    assert abs(res["ratio_64_32"] - UNIX_HEAP_FACTOR) <= 0.1


# --- per-test ratios: lowwater fit --tests ---------------------------------------------


def test_fit_tests_measures_one_portable_test_on_both_runtimes(capsys):
    from lowwater_tools.boardio import fittests

    names = fittests.portable_tests()
    assert ("test_pool", "test_blockpool_bad_arguments") in names and len(names) > 100
    res, progress = fit_json(capsys, "--tests", "--select", "test_pool::test_blockpool_bad_arguments")
    (row,) = res["tests"]
    assert 8192 < row["wasm32"] < row["unix"] and row["ratio"] == round(row["unix"] / row["wasm32"], 2)
    assert res["spread"]["tests"] == 1 and res["spread"]["min"] == row["ratio"]
    assert "ratio" in progress
    # one runtime skipping a test (viper) leaves it out of the spread
    res, _ = fit_json(
        capsys, "--tests", "--select", "test_process::test_processing_allocates_nothing_on_the_viper_path"
    )
    (row,) = res["tests"]
    assert "ratio" not in row and "skip" in row["note"] and res["spread"] is None
    assert cli.main(["fit", "--tests", "--select", "no-such-test"]) == 1
    assert "no portable test matches" in capsys.readouterr().err
