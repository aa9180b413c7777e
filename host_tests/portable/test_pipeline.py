# The user's own pipeline (docs/pipeline.md): a custom sensor driver and
# stages named by the profile, run by the firmware with the same budget,
# telemetry, shedding and accounting; the example app of examples/accel.
import sys

import ptest
from lowwater import app, config, pipeline
from lowwater._compat import VIPER
from lowwater.process import WCHUNKS
from lowwater.sensor import ReplaySensor, SimSensor
from lowwater.telemetry import Telemetry

try:
    from io import StringIO
except ImportError:  # pragma: no cover
    from uio import StringIO

MP_HEAP = {}
EXAMPLE = "examples/accel/lib"
PROFILE = "examples/accel/board.json"


def _path():
    if EXAMPLE not in sys.path:
        sys.path.append(EXAMPLE)


class _Sink:
    """A telemetry stream that keeps nothing (a UART would send the bytes) and
    counts the `evt` records (Telemetry writes each record's head as one constant)."""

    def __init__(self):
        self.evt = 0

    def write(self, s):
        if type(s) is str and s == "LW1 evt t=":
            self.evt += 1
        return len(s)


def _firmware(out=None, **over):
    _path()
    p = config.load(PROFILE)
    for k in over:
        p[k] = over[k]
    tele = Telemetry(out) if out is not None else Telemetry(enabled=False)
    return app.Firmware(p, telemetry=tele, source=ptest.FakeMemory(10**6))


def _lines(out, kind):
    return [ln for ln in out.getvalue().split("\n") if ln.startswith("LW1 " + kind + " ")]


def test_profile_names_the_driver_and_the_stages():
    out = StringIO()
    fw = _firmware(out)
    assert type(fw.sensor).__name__ == "Accel3"
    assert [type(s).__name__ for s in fw.stages] == ["HighPass", "Threshold"]
    n = 4 * fw._check_every + 10
    fw.run(n)
    rep = fw.finish()
    assert rep["chunks"] == n == rep["processed"] + rep["dropped"] + rep["left"]
    assert rep["errors"] == 0 and rep["processed"] == n
    # One event per tap: taps in the samples processed (40 triples per chunk).
    ev = _lines(out, "evt")
    samples = n * fw.profile["chunk_size"] // 6
    assert len(ev) == fw.sensor.taps(samples) == fw.stages[1].fired > 0, (len(ev), samples)
    assert ev[0].split(" ")[3:5] == ["stage=tap", "what=over"]
    assert int(ev[0].split("v=")[1]) >= 6000
    # The statistics see the high-passed signal: centred on 32768 (gravity gone).
    st = _lines(out, "stat")
    assert len(st) == 4
    mean = int(st[-1].split("smean=")[1].split()[0])
    assert abs(mean - 32768) < 400, st[-1]


def test_stages_allocate_nothing_per_chunk():
    # The whole step with the example's driver and stages: 0 B per chunk by
    # heap_lock and mem_total (the periodic point included: no log here).
    if VIPER is None:
        ptest.skip("the plain twins' frames go on the heap (no viper emitter)")
    sink = _Sink()
    fw = _firmware(sink)
    fw.run(2 * fw._check_every)
    ptest.assert_no_alloc(fw.step, 3 * fw._check_every, "Firmware.step with stages")
    assert fw.processed == fw.produced and fw.stages[1].fired == sink.evt > 0


def test_each_example_stage_allocates_nothing():
    _path()
    import accel
    import myfilter

    src = memoryview(bytearray(240))
    dst = memoryview(bytearray(240))
    s = accel.Accel3({"tap_every": 20})
    sink = _Sink()
    ev = pipeline.Events(Telemetry(sink), "tap")
    ctx = pipeline.Context(240, 2, 300, ev)
    hp = myfilter.HighPass({}, ctx)
    th = myfilter.Threshold({"level": 6000}, ctx)

    def chunk():
        s.readinto(src)
        hp.process(src, 240, dst)
        th.process(dst, 240, None)

    chunk()
    ptest.assert_no_alloc(chunk, 200, "Accel3 + HighPass + Threshold")
    assert ev.count == th.fired == sink.evt > 0


def test_builtin_smoothing_expressed_as_a_stage_gives_the_same_statistics():
    p = config.load("boards/unix.json")
    q = Telemetry(enabled=False)
    sen = ReplaySensor(SimSensor(1), p["chunk_size"])  # stateless: both see the same samples
    a = app.Firmware(p, sensor=sen, telemetry=q, source=ptest.FakeMemory(10**6))
    ctx = pipeline.Context(p["chunk_size"], 2, 1000, None)
    b = app.Firmware(p, sensor=sen, telemetry=q, source=ptest.FakeMemory(10**6), stages=[pipeline.Smooth({}, ctx)])
    n = p["check_every"] + 7
    a.run(n)
    b.run(n)
    assert (a.dropped, b.dropped, a.errors, b.errors) == (0, 0, 0, 0)
    assert list(a.stats.out) == list(b.stats.out)
    assert a.stats.out[WCHUNKS] == 7 and a.processed == b.processed == n


def test_shedding_and_faults_keep_the_accounting_with_stages():
    out = StringIO()
    fw = _firmware(out)
    fw.run(10)
    fw.shedding = True
    fw.run(60)  # every other chunk is skipped while shedding: the ring overwrites
    assert fw.ring.dropped > 0
    boom = [0]
    hp = fw.stages[0].process

    def failing(src, n, dst):
        boom[0] += 1
        if boom[0] == 3:
            raise ValueError("stage bug")
        return hp(src, n, dst)

    fw._chain = ((failing, fw._chain[0][1]), fw._chain[1])
    fw.shedding = False
    fw.run(10)
    rep = fw.finish()
    assert rep["errors"] == 1 and len(_lines(out, "err")) == 1
    assert rep["chunks"] == rep["processed"] + rep["dropped"] + rep["left"]


def _bad(**over):
    p = config.load(PROFILE)
    for k in over:
        p[k] = over[k]
    return str(ptest.raises(ValueError, config.validate, p))


def test_profile_fields_of_the_pipeline_are_checked():
    assert "stages" in _bad(stages={"module": "m"})
    assert "stages[0].class" in _bad(stages=[{"module": "m"}])
    assert "stages[1]" in _bad(stages=[{"module": "m", "class": "C"}, 3])
    assert "stages[0].module" in _bad(stages=[{"module": "m x", "class": "C"}])
    assert "stages" in _bad(stages=[{"module": "m", "class": "C"}] * 9)
    s = dict(config.load(PROFILE)["sensor"])
    s.pop("module")
    assert "sensor.module" in _bad(sensor=s)
    s = dict(config.load(PROFILE)["sensor"])
    s["kind"] = "sonar"
    assert "sensor.kind" in _bad(sensor=s)


def test_a_missing_stage_module_or_class_is_named():
    p = config.load(PROFILE)
    _path()
    p["stages"] = [{"module": "nosuchstage", "class": "X"}]
    e = ptest.raises(ImportError, app.Firmware, p)
    assert "nosuchstage" in str(e)
    p["stages"] = [{"module": "myfilter", "class": "Nope"}]
    assert "myfilter:Nope" in str(ptest.raises(ValueError, app.Firmware, p))


def test_main_frees_its_boot_time_module():
    _path()
    if "lowwater.startup" in sys.modules:  # loaded by an earlier test: main() would keep it
        del sys.modules["lowwater.startup"]
    fw = app.main(PROFILE, 70, log_path="")
    assert fw.processed == 70 and fw.stages[1].fired > 0
    assert "lowwater.startup" not in sys.modules
    # config was imported by this test module first: main() leaves it loaded.
    assert "lowwater.config" in sys.modules


for _n in list(globals()):
    if _n.startswith("test_"):
        MP_HEAP[_n] = 262144
