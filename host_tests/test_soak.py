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


# --- the oracle: a rotation that deleted too much (issue 13) --------------------


def _log(d, n, per_file=5, files=4):
    # n records of 20 bytes (32 with the header) in files of per_file records.
    from lowwater_tools.reliability import log as logread

    log = logread.fl.FlashLog(str(d), max_file_bytes=32 * per_file, max_files=files)
    for i in range(n):
        log.append(b"%020d" % i)
    log.close()
    return sorted(p.name for p in d.iterdir())


def _verdict(d, files=4, per_file=5):
    from lowwater_tools.reliability.soak import check_log, rotation_problem

    return rotation_problem(check_log(d).reports, files, 32 * per_file)


def test_oracle_accepts_rotation_as_it_should_be(tmp_path):
    for n in (1, 5, 6, 19, 21, 40, 41):
        d = tmp_path / f"ok{n}"
        _log(d, n)
        assert _verdict(d) is None, (n, sorted(p.name for p in d.iterdir()))
    # killed between the deletion and the creation of the next file: one file
    # fewer while the newest is full. Legitimate.
    d = tmp_path / "mid"
    names = _log(d, 40)  # 8 full files created, 5..8 retained, the newest full
    (d / names[0]).unlink()
    assert _verdict(d) is None


def test_oracle_catches_a_rotation_that_deleted_one_file_too_many(tmp_path):
    d = tmp_path / "greedy"
    names = _log(d, 36)  # 8 files created, 5..8 retained, the newest has room
    assert len(names) == 4
    (d / names[0]).unlink()  # what a rotation deleting one file too many leaves
    why = _verdict(d)
    assert why and "rotation deleted too much: 3 log files retained, 4 expected" in why
    d = tmp_path / "gap"
    names = _log(d, 36)
    (d / names[1]).unlink()  # not the oldest
    why = _verdict(d)
    assert why and "not consecutive" in why
