"""One capture/CSV/live setup for the commands that stream a board's output
(`lowwater monitor`, `lowwater run`):

    with Session(capture=..., csv=..., profile=prof, quiet=False, title="...") as ses:
        ses.feed(data)          # raw bytes: saved to --capture, parsed, shown, CSV'd
        ses.flush()             # a partial line at a port drop or EOF
    ses.result()                # the summary

--capture gets every byte (flushed per read), --csv every record (flushed per
record), --plot a bounded decimated series (plot.Series), the live view the rest.
Files are opened before any data arrives, so a bad path is a UserError at once.
"""

from __future__ import annotations

import collections
import time

from lowwater_tools.errors import UserError
from lowwater_tools.telemetry.live import LiveView
from lowwater_tools.telemetry.lw1 import CsvLog, Parser


HELD = 4096  # records held back while waiting for the boot record (monitor --reset)


class Session:
    def __init__(
        self,
        *,
        capture=None,
        csv=None,
        profile: dict | None = None,
        quiet: bool = False,
        title: str = "lowwater",
        word_bits: int | None = None,
        on_noise=None,
        plot_series=None,
        view: LiveView | None = None,
    ):
        self.capture = None
        self.csvlog = None
        if capture:
            try:
                self.capture = open(capture, "wb")
            except OSError as e:
                raise UserError(f"cannot write {capture}: {e.strerror or e}") from None
        try:
            self.csvlog = CsvLog(csv) if csv else None
        except BaseException:
            self._close_files()
            raise
        self.parser = Parser(on_noise=on_noise)
        self.series = plot_series
        # While True (monitor --reset, until the board's `boot`), records go to the
        # capture and CSV only: they are the previous run's last words (its `end`
        # when Ctrl-C stopped it), not part of the run being watched.
        self.hold = False
        self.held: collections.deque = collections.deque(maxlen=HELD)
        self.view = view or LiveView(profile=profile, quiet=quiet, title=title, word_bits=word_bits)

    def feed(self, data: bytes, now: float | None = None) -> None:
        if not data:
            return
        if self.capture:
            try:
                self.capture.write(data)
                self.capture.flush()
            except OSError as e:  # a full disk: one line naming the file
                raise UserError(f"cannot write {self.capture.name}: {e.strerror or e}") from None
        self.take(self.parser.feed(data), now)

    def flush(self, now: float | None = None) -> None:
        """End of a stream (EOF, port lost): the final partial line, if it is a record."""
        self.take(self.parser.close(), now)

    def take(self, recs, now: float | None = None) -> None:
        if not recs:
            return
        host_time = time.time() if now is None else now
        for rec in recs:
            rec.host_time = host_time
            if self.hold:
                if rec.kind != "boot":
                    if self.csvlog:
                        self.csvlog.add(rec)
                    self.held.append(rec)
                    continue
                self.hold = False
                self.held.clear()
            if self.series is not None:
                self.series.add(rec)
            if self.csvlog:
                self.csvlog.add(rec)
            self.view.add(rec)

    def release(self) -> None:
        """Stop holding (the reset did not happen): the held records are shown and
        summed after all (the last HELD of them)."""
        if not self.hold:
            return
        self.hold = False
        held, self.held = list(self.held), collections.deque(maxlen=HELD)
        for rec in held:
            if self.series is not None:
                self.series.add(rec)
            self.view.add(rec)

    def result(self) -> dict:
        return self.view.summary.result()

    def _close_files(self):
        for f in (self.capture, self.csvlog):
            if f:
                try:
                    f.close()
                except OSError:  # its last flush failed (a full disk): already said by feed()/add()
                    pass

    def __enter__(self):
        self.view.__enter__()
        return self

    def __exit__(self, *exc):
        try:
            self.view.__exit__(*exc)
        finally:
            self._close_files()
