"""Progress of long steps: a tqdm bar on a terminal, a log line a minute elsewhere.

Under ``nohup``, a batch scheduler or a pipe there is no bar (thousands of redraws would fill the
log), but a step of many minutes (the image cache, hand-crafted features, region scoring,
layer features) must not look hung: :func:`progress_bar` then logs ``desc: i/n (rate)`` at
most once every ``every`` seconds, and once at the end when the step took that long.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

log = logging.getLogger("vsent")

#: Seconds between two log lines of a step without a bar.
LOG_EVERY = 60.0


def on_terminal(progress: bool) -> bool:
    """Whether to draw bars: ``progress`` asked for and standard error a terminal. The
    functions' ``progress=True`` default (the Python API) then draws none into a file or
    pipe, as the command line does (:func:`vsent.cli.common.progress_enabled`)."""
    return progress and sys.stderr.isatty()


def progress_bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "",
                 unit: str = "it", enabled: bool = False, every: float = LOG_EVERY) -> Any:
    """``tqdm(iterable, total=, desc=, unit=, leave=False)`` when ``enabled`` (a terminal),
    else a :class:`LogProgress` with the same ``update``/iteration/context-manager use."""
    if on_terminal(enabled):
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=False)
    return LogProgress(iterable, total=total, desc=desc, unit=unit, every=every)


class LogProgress:
    """Counts items and logs ``desc: i/n unit (rate/s)`` at most every ``every`` seconds."""

    def __init__(self, iterable: Iterable | None = None, *, total: int | None = None,
                 desc: str = "", unit: str = "it", every: float = LOG_EVERY) -> None:
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.every, self.n = every, 0
        self.start = self._last = time.monotonic()
        self._logged: int | None = None  # the count of the last line (logged once each)
        self._closed = False

    def __iter__(self) -> Iterator:
        for item in self.iterable or ():
            yield item
            self.update(1)
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            self._log(now)

    def close(self) -> None:
        """Log the final count (once: iterating closes, and so does leaving a ``with``)."""
        if self._closed:
            return
        self._closed = True
        now = time.monotonic()
        if now - self.start >= self.every and self._logged != self.n:
            self._log(now)
            self._last = now

    def _log(self, now: float) -> None:
        self._logged = self.n
        of = f"/{self.total}" if self.total is not None else ""
        rate = self.n / max(now - self.start, 1e-9)
        log.info("%s: %d%s %s (%.1f %s/s)", self.desc or "progress", self.n, of, self.unit,
                 rate, self.unit)

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
