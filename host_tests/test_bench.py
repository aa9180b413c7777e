"""`lowwater bench --quick`: the benchmark suite runs end to end and reports every
figure (structure and behaviour only: never timings)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from lowwater_tools import boards
from lowwater_tools.bench import driver

TIMEOUT = 900  # --quick: two or three minutes (callgrind runs 28 short cases, slower under load); bounded anyway
pytestmark = [pytest.mark.slow, pytest.mark.timeout(960)]  # make test-long

RING_VARIANTS_MP = ("viper", "twin", "chunk", "deque", "list")  # against RingIO
RING_VARIANTS_PY = ("twin", "chunk")  # against collections.deque


CG_RING_ROWS = {
    f"cg.ring.{p}.{v}.{k}" for p in ("fill", "stream", "odd") for v in ("viper", "twin") for k in driver.cg_chunks(True)
}


def expected_ids() -> set[str]:
    ids = set()
    for cap in driver.CAPS:
        for k in driver.CHUNKS:
            ids |= {f"ring.mp.{v}.{cap}.{k}" for v in RING_VARIANTS_MP}
            ids |= {f"ring.py.{v}.{cap}.{k}" for v in RING_VARIANTS_PY}
    ids |= {f"heap.ring.{v}" for v in ("ringio", *RING_VARIANTS_MP)}
    ids |= {f"heap.op.viper.{op}" for op in ("write", "peekinto", "readinto", "len", "space")}
    ids |= {f"heap.op.twin.{op}" for op in ("write", "peekinto", "readinto", "len", "space")}
    ids |= {f"heap.op.chunk.{op}" for op in ("claim", "commit", "oldest", "oldest_len", "release", "len")}
    ids |= {
        "heap.op.calibration",
        "heap.loop.nocheck",
        "heap.loop.default",
        "heap.loop.check",
        "heap.loop.window",
        "budget.overhead",
        "budget.control",
    }
    ids |= {f"gc.{b}" for b in boards.names()}
    ids |= {f"pool.{p}.{pct}" for p in ("blockpool", "sizeclass", "heap") for pct in (10, 50, 90)}
    ids |= {f"ring.pattern.{p}.{v}.{k}" for p in ("stream", "odd") for v in ("viper", "twin") for k in driver.CHUNKS}
    ids |= {f"cg.step_ratio.{k}" for k in driver.cg_chunks(True)}
    ids |= {f"cg.budget.{h}" for h in driver.cg_heaps(True)}
    ids |= CG_RING_ROWS
    ids |= {"cg.tutorial", "tutorial.speed"}
    ids |= {f"tutorial.{v}.{f}" for v in ("firmware", "tutorial") for f in ("heap", "collections", "low_water")}
    ids |= {
        "cold.first_chunk.py",
        "cold.first_chunk.mpy",
        "cold.wall.py",
        "cold.wall.mpy",
        "cold.heap_first_chunk",
        "cold.lazy_ratio",
    }
    ids |= {f"cold.heap.{c}" for c in ("package", "lazy_ring", "firmware", "eager_all")}
    return ids


# The goals of issue 7, by row: every one must be judged (met or missed).
GOAL_ROWS = {
    "ring.mp.viper.4096.256",
    "ring.mp.viper.16384.256",
    "ring.mp.viper.4096.64",
    "ring.mp.viper.16384.64",
    "ring.mp.twin.4096.256",
    "ring.mp.twin.16384.256",
    "heap.ring.viper",
    "heap.ring.chunk",
    "heap.loop.nocheck",
    "budget.overhead",
    "heap.loop.default",
    "heap.loop.window",
    *(f"cg.step_ratio.{k}" for k in driver.cg_chunks(True)),
    *(f"cg.budget.{h}" for h in driver.cg_heaps(True)),
    *(f"ring.pattern.{p}.{v}.{k}" for p in ("stream", "odd") for v in ("viper", "twin") for k in driver.CHUNKS),
    *CG_RING_ROWS,
}


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "results.json"
    p = subprocess.run(
        [sys.executable, "-m", "lowwater_tools.cli", "bench", "--quick", "--json", str(out)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=TIMEOUT,
    )
    return p, out


def test_quick_run_succeeds_and_writes_json(quick):
    p, out = quick
    assert p.returncode == 0, p.stderr.decode()[-3000:]
    assert out.is_file()
    res = json.loads(out.read_text())
    assert res["meta"]["quick"] is True
    assert res["meta"]["reps"] >= 1


def test_every_expected_row_is_reported_once(quick):
    _, out = quick
    rows = json.loads(out.read_text())["rows"]
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicate row ids"
    missing = expected_ids() - set(ids)
    assert not missing, sorted(missing)


def test_every_ratio_is_finite_and_positive(quick):
    _, out = quick
    rows = json.loads(out.read_text())["rows"]
    ratios = [r for r in rows if r["unit"] == "x"]
    assert len(ratios) >= 50
    for r in ratios:
        for key in ("value", "min", "max"):
            v = r[key]
            assert isinstance(v, (int, float)) and math.isfinite(v) and v > 0, (r["id"], key, v)
        assert r["min"] <= r["value"] <= r["max"], r["id"]


def test_heap_figures_are_counts_and_goals_are_judged(quick):
    _, out = quick
    res = json.loads(out.read_text())
    rows = {r["id"]: r for r in res["rows"]}
    for r in rows.values():
        if r["unit"] == "B":
            assert isinstance(r["value"], (int, float)) and r["value"] >= 0, r["id"]
    for rid in GOAL_ROWS:
        assert rows[rid]["goal"] and rows[rid]["met"] in (True, False), rid
    judged = [r for r in rows.values() if r["met"] is not None]
    assert res["goals"]["met"] + len(res["goals"]["missed"]) == len(judged)
    # the harness measures nothing for an empty call (else every heap figure is off)
    assert rows["heap.op.calibration"]["value"] == 0
    # gc pause rows carry the distribution, in order
    for b in boards.names():
        g = rows[f"gc.{b}"]
        assert 0 <= g["p50"] <= g["p99"] <= g["max_us"], b


def test_table_has_a_line_per_row_and_marks_goals(quick):
    p, out = quick
    text = p.stdout.decode()
    rows = json.loads(out.read_text())["rows"]
    lines = [ln for ln in text.splitlines() if ln.startswith("| ")]
    sections = {r["section"] for r in rows}
    assert len(lines) == 1 + len(rows) + len(sections)  # header + rows + section headings
    assert "goals met" in text
    for r in rows:
        if r["met"] is not None:
            assert any(r["figure"] in ln and (" met |" in ln or "MISSED" in ln) for ln in lines), r["id"]


def test_bad_reps_is_a_user_error():
    p = subprocess.run(
        [sys.executable, "-m", "lowwater_tools.cli", "bench", "--reps", "0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=30,
    )
    assert p.returncode == 1
    assert p.stderr.decode().startswith("lowwater: ") and "--reps" in p.stderr.decode()  # args.py converter
    assert "Traceback" not in p.stderr.decode()


def test_statistics_helpers():
    assert driver.median([3, 1, 2]) == 2
    assert driver.median([4, 1, 3, 2]) == 2.5
    assert driver.percentile(list(range(1, 101)), 99) == 99
    assert driver.percentile([5], 99) == 5
    assert driver.ratios([2, 4], [1, 8]) == [2.0, 0.5]
    s = driver.summary([1.0, 3.0, 2.0])
    assert (s["median"], s["min"], s["max"], s["n"]) == (2.0, 1.0, 3.0, 3)
