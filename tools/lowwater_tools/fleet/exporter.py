"""Prometheus exporter of the fleet state (`lowwater fleet --prometheus [HOST:]PORT`).

Metrics are computed from the fleet's snapshot at each scrape (a custom
collector): nothing accumulates between scrapes, and the number of series is
bounded by the fleet's board cap (state.DEFAULT_MAX_BOARDS). Every per-board
series carries the label `board` (the id from the topic, escaped by
prometheus-client whatever it holds).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..errors import UserError
from .state import Fleet

LEVELS = {"ok": 0, "warn": 1, "critical": 2}

# (metric, row key, help); gauges labelled by board, skipped when unknown.
GAUGES = (
    ("lowwater_free_bytes", "free", "free heap at the last budget check (board bytes)"),
    ("lowwater_low_water_bytes", "lw", "lowest free heap since the board's boot"),
    ("lowwater_heap_bytes", "heap", "heap budget of the board (boot record)"),
    ("lowwater_warn_free_bytes", "warn", "free heap under which the board is at level warn"),
    ("lowwater_min_free_bytes", "min", "free heap under which the board is at level critical"),
    ("lowwater_gc_pause_us", "gc_us", "gc pause at the last budget check"),
    ("lowwater_records_per_second", "rate", "records received per second"),
    ("lowwater_last_seen_timestamp_seconds", "last_seen", "host time of the board's last message"),
)
COUNTERS = (
    ("lowwater_records", "records", "LW1 records received"),
    ("lowwater_records_lost", "lost", "records lost in transit (gaps in the mem n sequence)"),
    ("lowwater_board_dropped", "board_lost", "records the board dropped while its broker was away"),
    ("lowwater_errors", "errors", "err records"),
    ("lowwater_bad_payloads", "bad", "tel payloads that were not one LW1 record"),
)


class FleetCollector:
    def __init__(self, fleet: Fleet):
        self.fleet = fleet

    def collect(self):
        rows, totals = self.fleet.snapshot()
        for name, key, doc in GAUGES:
            m = GaugeMetricFamily(name, doc, labels=["board"])
            for r in rows:
                if r[key] is not None:
                    m.add_metric([r["id"]], float(r[key]))
            yield m
        level = GaugeMetricFamily("lowwater_level", "budget level: 0 ok, 1 warn, 2 critical", labels=["board"])
        online = GaugeMetricFamily("lowwater_online", "1 online, 0 offline or done (status topic)", labels=["board"])
        ended = GaugeMetricFamily(
            "lowwater_ended", "1 when the board ended cleanly (status done, end record)", labels=["board"]
        )
        for r in rows:
            ended.add_metric([r["id"]], 1.0 if r["ended"] else 0.0)
            if r["level"] in LEVELS:
                level.add_metric([r["id"]], LEVELS[r["level"]])
            if r["online"] is not None:
                online.add_metric([r["id"]], 1.0 if r["online"] else 0.0)
        yield level
        yield online
        yield ended
        for name, key, doc in COUNTERS:
            m = CounterMetricFamily(name, doc, labels=["board"])
            for r in rows:
                m.add_metric([r["id"]], float(r[key]))
            yield m
        yield GaugeMetricFamily("lowwater_fleet_boards", "boards tracked", value=totals["boards"])
        yield CounterMetricFamily("lowwater_fleet_rejected_messages", "messages not tracked", value=totals["rejected"])
        if totals["broker_dropped"] is not None:
            yield CounterMetricFamily(
                "lowwater_broker_dropped_messages",
                "messages the broker dropped ($SYS/broker/publish/messages/dropped)",
                value=totals["broker_dropped"],
            )


def parse_listen(text: str) -> tuple[str, int]:
    """'[HOST:]PORT' -> (host, port); host defaults to 127.0.0.1."""
    host, _, port = str(text).rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        p = int(port)
    except ValueError:
        raise UserError(f"--prometheus wants [HOST:]PORT, got {text!r}") from None
    if not 0 <= p <= 65535:
        raise UserError(f"--prometheus port out of range: {p}")
    return host, p


def serve(fleet: Fleet, listen: str):
    """Serve /metrics; returns the HTTP server (call .shutdown() to stop it)."""
    host, port = parse_listen(listen)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(fleet))
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as e:
        raise UserError(f"cannot serve metrics on {host}:{port}: {e.strerror or e}") from None
    return server
