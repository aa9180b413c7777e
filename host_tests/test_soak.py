"""`lowwater soak` (make soak), short: a memory run and a power-loss run (issue 6 §6)."""

from __future__ import annotations

import json
import subprocess
import sys


def _soak(*argv, timeout=180):
    return subprocess.run(
        [sys.executable, "-m", "lowwater_tools.cli", "soak", *argv],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_short_soak_reports_every_figure_as_json():
    r = _soak("--chunks", "30000", "--kills", "5", "--seed", "3", "--json")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    d = json.loads(r.stdout)
    assert d["ok"] is True
    m = d["memory"]
    assert m["chunks"] == 30000 == m["processed"] + m["dropped"] and m["accounting_ok"]
    assert m["problems"] == [] and m["exit_status"] == 0
    assert m["leak_verdict"] == "ok" and isinstance(m["leak_slope"], float)
    assert isinstance(m["lw_drift"], int) and m["lw_drift"] == m["lw_end"] - m["lw_start"]
    assert m["low_water"] <= min(m["lw_start"], m["lw_end"])
    g = m["gc_us"]
    assert g["n"] == 30000 // 256 + 1 and g["p50"]  # + the check at the end <= g["p90"] <= g["p99"] <= g["max"]
    assert m["log_records"] > 0 and m["log_corrupt"] == 0 and m["log_seq_errors"] == 0
    p = d["powerloss"]
    assert p["kills"] == 5 and p["seed"] == 3
    assert p["lost_acked"] == [] and p["corrupt"] == [] and p["seq_errors"] == [] and p["problems"] == []
    assert p["acked"] > 0 and p["final_acks"] >= 2
    assert p["recovery_us"]["n"] >= 1


def test_memory_only_soak_prints_a_readable_report():
    r = _soak("--chunks", "30000", "--kills", "0", "--heap", "140000")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "memory soak: board unix, unix heap 140000 B, 30000 of 30000 chunks" in out
    assert "accounting: produced 30000 = processed 30000 + dropped 0: ok" in out
    for word in ("low-water:", "drift", "gc pause (us): p50", "leak slope:", "flash log:"):
        assert word in out, out
    assert "power loss" not in out
    assert out.rstrip().endswith("soak: ok")


def test_a_heap_too_small_fails_with_one_line():
    r = _soak("--chunks", "2000", "--kills", "0", "--heap", "40000")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines[-1].startswith("lowwater: memory soak: the firmware exited with status 1 (MemoryError"), lines
    assert len([ln for ln in lines if "MemoryError" in ln]) == 1
