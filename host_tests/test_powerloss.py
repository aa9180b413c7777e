"""Power loss on the virtual board: SIGKILL the firmware at random moments while
it logs to its littlefs image, restart, and verify the flash log (issue 6 §2).

The suite runs 20 kills; `make soak` runs >= 200 (lowwater soak --kills)."""

from __future__ import annotations

import io

import pytest

from lowwater_tools.reliability import log as logread
from lowwater_tools.reliability import soak
from lowwater_tools.paths import device_module

app = device_module("app")
telemetry = device_module("telemetry")
sensor = device_module("sensor")
config = device_module("config")

# Tiny files so that rotation, and deletion of the oldest file, happen under the kills.
SMALL_LOG = {"log_every": 2, "log_file_bytes": 512, "log_files": 3}


def test_sigkill_while_logging_loses_no_acknowledged_record():
    r = soak.powerloss("unix", kills=20, seed=7, log=SMALL_LOG, timeout=30)
    assert r.problems == [], r.problems
    assert r.kills == 20
    assert r.acked >= 20  # records were acknowledged durable before kills
    assert r.lost_acked == []  # ... and every one still there (or rotated away: older than the log)
    assert r.acked_verified + r.acked_rotated == r.acked
    assert r.acked_rotated > 0  # rotation deleted whole old files under the kills
    assert r.corrupt == [] and r.seq_errors == [] and r.crc_errors == 0
    assert r.restart_regressions == []  # every restart resumed at or after the last acked seq
    assert r.records_verified >= 12 and r.files <= 3
    assert r.final_acks >= 2  # the log keeps working after the last restart
    assert r.recovery_us["n"] >= 10 and r.recovery_us["max"] > 0
    assert r.wdt_resets == 0


class _Log:
    """A FlashLog stand-in that keeps the payloads."""

    def __init__(self):
        self.seq = 0
        self.records = []
        self.flushes = 0

    def append(self, data):
        self.seq += 1
        self.records.append((self.seq, bytes(data)))
        return self.seq

    def flush(self):
        self.flushes += 1


def _window_records(n=12):
    prof = config.load("boards/unix.json")
    prof["check_every"] = 8
    out = io.StringIO()
    fw = app.Firmware(prof, sensor=sensor.SimSensor(1), telemetry=telemetry.Telemetry(out))
    log = _Log()
    fw.use_log(log, every=3)
    fw.run(8 * n)
    return log, out.getvalue()


def test_the_firmware_window_records_pass_the_check_and_acks_follow_flushes():
    log, text = _window_records(12)
    assert [s for s, _ in log.records] == list(range(1, 13))
    for seq, data in log.records:
        assert soak.check_window_record(seq, data) is None
    acks = [line for line in text.splitlines() if line.startswith("LW1 log ")]
    assert len(acks) == 4 == log.flushes
    assert [int(a.split("seq=")[1].split()[0]) for a in acks] == [3, 6, 9, 12]
    assert all(a.endswith(" durable=1") for a in acks)


@pytest.mark.parametrize(
    "mutate, why",
    [
        (lambda s, d: (s + 1, d), "payload seq"),  # a record under another seq
        (lambda s, d: (s, d[:2] + bytes([d[2] ^ 1]) + d[3:]), "tag"),
        (lambda s, d: (s, d[:-1]), "length"),
        (lambda s, d: (s, b"X" + d[1:]), "kind/version"),
    ],
)
def test_the_checker_refuses_wrong_payloads(mutate, why):
    log, _ = _window_records(2)
    seq, data = mutate(*log.records[1])
    assert why in soak.check_window_record(seq, data)


def test_check_log_reports_gaps_and_corrupt_records(tmp_path):
    log, _ = _window_records(6)
    recs = dict(log.records)
    d = tmp_path / "log"
    d.mkdir()
    body = b"".join(logread.encode(s, recs[s]) for s in (1, 2, 4, 5))
    body += logread.encode(6, recs[5])  # intact framing, wrong payload
    (d / "00000001.log").write_bytes(body + b"\xa5garbage")
    lc = soak.check_log(d)
    assert lc.records == 5 and lc.first_seq == 1 and lc.last_seq == 6
    assert lc.seq_errors == [(2, 4)]
    assert [s for s, _ in lc.corrupt] == [6]
    assert lc.skipped_bytes == 8
