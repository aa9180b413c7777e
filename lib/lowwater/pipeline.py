# lowwater.pipeline: the user's own processing stages (docs/pipeline.md).
#
# A stage is any class with
#     __init__(self, spec, ctx)   allocates everything it needs (spec: its
#                                 profile entry, a dict; ctx: a Context)
#     process(self, src, n, dst)  -> bytes written into dst; called per chunk,
#                                 must not allocate (src: n bytes of samples,
#                                 dst: a preallocated block of ctx.chunk_bytes)
# and, for a stage that only looks at the samples (a detector), the class
# attribute `writes = False`: it leaves dst alone and returns n, and the next
# stage gets the same samples. The firmware runs the stages in order on each
# chunk it processes, then its statistics on the last output, under the same
# budget, shedding, telemetry and accounting as the built-in path.
#
# Allocation: build() and Events() allocate (boot); Events.emit() allocates
# nothing (one `evt` record through the telemetry's preallocated buffer).
from lowwater._compat import const
from lowwater.process import _smooth

_MAX_STAGES = const(8)


class Events:
    """A stage's event writer: emit("over", 1234) writes
    `LW1 evt t=.. stage=<name> what=over v=1234` and counts it. `what` is a
    constant token (letters, digits, _ . : / + -), `v` an int."""

    def __init__(self, tele, name):
        self.tele = tele
        self.name = name
        self.count = 0

    def emit(self, what, v):
        self.count += 1
        t = self.tele
        if t is None or not t.enabled:
            return
        t._head("LW1 evt t=")
        t._ws(" stage=")
        t._ws(self.name)
        t._ws(" what=")
        t._val(what)
        t._ws(" v=")
        t._int(v)
        t._ws("\n")


class Context:
    """What a stage's __init__ gets besides its spec: chunk_bytes (the largest
    n, and the size of dst), width (bytes per sample, little-endian unsigned),
    rate_hz (the sensor's sample rate) and events (its Events writer)."""

    def __init__(self, chunk_bytes, width, rate_hz, events):
        self.chunk_bytes = chunk_bytes
        self.width = width
        self.rate_hz = rate_hz
        self.events = events


class Smooth:
    """The firmware's built-in filter as a stage: dst[i] = (x[i] + x[i-1]) // 2
    (2-tap moving average; viper where the port has it)."""

    def __init__(self, spec, ctx):
        self.width = ctx.width

    def process(self, src, n, dst):
        return _smooth(src, n, self.width, dst)


def stage_class(spec):
    """The class a stage spec ({"module": M, "class": C, ...}) names; ImportError
    or ValueError naming the spec when it cannot be found or is not a stage."""
    mod = spec.get("module")
    name = spec.get("class")
    try:
        m = __import__(mod, None, None, (name,))
    except ImportError as e:
        raise ImportError("stage module %s: %s" % (mod, e))
    cls = getattr(m, name, None)
    if cls is None:
        raise ValueError("stage %s:%s: no such class" % (mod, name))
    if not hasattr(cls, "process"):
        raise ValueError("stage %s:%s: has no process(src, n, dst)" % (mod, name))
    return cls


def build(specs, tele, chunk_bytes, width, rate_hz):
    """The stage objects of a profile's "stages" list, in order."""
    if len(specs) > _MAX_STAGES:
        raise ValueError("at most 8 stages")
    out = []
    for spec in specs:
        cls = stage_class(spec)
        ev = Events(tele, spec.get("name") or spec["class"])
        out.append(cls(spec, Context(chunk_bytes, width, rate_hz, ev)))
    return out


def chain(stages, blocks):
    """The firmware's wiring: a tuple of (process, dst) per stage, dst None for
    a stage with writes = False; writing stages alternate between the two
    preallocated blocks (each one reads what the previous one wrote)."""
    out = []
    k = 0
    for s in stages:
        if getattr(s, "writes", True):
            out.append((s.process, blocks[k & 1]))
            k += 1
        else:
            out.append((s.process, None))
    return tuple(out)


def writers(stages):
    """How many of the stages write into dst (the blocks they need: min(n, 2))."""
    return len([s for s in stages if getattr(s, "writes", True)])
