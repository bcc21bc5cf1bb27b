"""vsent.progress: without a terminal, a long step logs a line now and then instead of a bar."""

from __future__ import annotations

import io
import logging

import vsent.progress as P


def test_a_step_without_a_bar_logs_its_count_every_interval(caplog, monkeypatch):
    clock = iter(range(0, 1000, 25))  # each call of time.monotonic: 25 s later
    monkeypatch.setattr(P.time, "monotonic", lambda: next(clock))
    caplog.set_level(logging.INFO, logger="vsent")
    items = list(P.progress_bar(range(10), desc="image cache", unit="img", every=60))
    assert items == list(range(10))
    lines = [r.getMessage() for r in caplog.records]
    # started at 0 s; updates at 25, 50, 75 (logged), 100, 125, 150 (logged), ...; a last line
    assert lines[0] == "image cache: 3/10 img (0.0 img/s)"  # 3 images in 75 s
    assert lines[-1].startswith("image cache: 10/10 img")
    assert 3 <= len(lines) <= 5


def test_a_short_step_stays_silent_and_a_bar_is_tqdm(caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="vsent")
    monkeypatch.setattr(P, "on_terminal", lambda progress: progress)  # (as on a terminal)
    with P.progress_bar(total=3, desc="quick") as bar:
        for _ in range(3):
            bar.update()  # one item by default, as tqdm's update (mut58f G26: 0 passed)
    assert bar.n == 3 and caplog.records == []
    from tqdm import tqdm

    bar = P.progress_bar(range(2), enabled=True)
    assert isinstance(bar, tqdm)
    bar.close()


def test_the_final_count_is_logged_once(caplog):
    """Iterating closes the bar and so does leaving ``with``; a count already logged by the
    last update is not logged again (audit_core23 #14: '3/3' came three times)."""
    caplog.set_level(logging.INFO, logger="vsent")
    with P.progress_bar(range(3), desc="step", every=0) as bar:
        for _ in bar:
            pass
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(" it")[0] for line in lines] == ["step: 1/3", "step: 2/3", "step: 3/3"]
    bar.close()  # closed: nothing more
    assert len(caplog.records) == 3
    caplog.clear()
    # a generator has no length: no total shown, counted all the same (mut60f G32: len() raised)
    assert list(P.progress_bar((c for c in "ab"), desc="gen", every=0)) == ["a", "b"]
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == ["gen: 1 it", "gen: 2 it"]


# mutation round 46 (mut46d): vsent.progress mutants the suite missed


class _Stderr(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_bars_need_a_terminal_and_to_be_asked_for(monkeypatch):
    """A bar when asked for and standard error is a terminal, a LogProgress otherwise
    (mut46d: every test replaced on_terminal, so a bar drawn into a log file, or on a
    terminal when not asked, passed); the bar is cleared when done (``leave=False``)."""
    from tqdm import tqdm

    for tty in (False, True):
        monkeypatch.setattr(P.sys, "stderr", _Stderr(tty))
        assert P.on_terminal(True) is tty and not P.on_terminal(False)
        assert isinstance(P.progress_bar(range(2), enabled=False), P.LogProgress)
        bar = P.progress_bar(range(2), enabled=True)
        if tty:
            assert isinstance(bar, tqdm) and bar.leave is False
        else:
            assert isinstance(bar, P.LogProgress)
        bar.close()


def test_a_line_a_minute_by_default_counting_every_update(caplog, monkeypatch):
    """Without ``every``, a line once 60 s have passed (at 60 s, not after); ``update(n)``
    counts n; an explicit ``total`` is the one shown, and a bar without ``desc`` is called
    "progress" (mut46d: 30 s, a strict comparison, update counting 1 and a total dropped or
    replaced by the iterable's length passed)."""
    clock = iter(range(0, 1000, 20))  # each call of time.monotonic: 20 s later
    monkeypatch.setattr(P.time, "monotonic", lambda: next(clock))
    caplog.set_level(logging.INFO, logger="vsent")
    with P.progress_bar(total=50, unit="img") as bar:  # started at 0 s
        for _ in range(3):  # at 20, 40 and 60 s
            bar.update(6)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["progress: 18/50 img (0.3 img/s)"]  # logged at 60 s, not again at close
    caplog.clear()
    batches = [range(8), range(8)]  # a total of images over an iterable of batches
    for _batch in P.progress_bar(batches, total=16, desc="features", unit="img"):
        pass
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == ["features: 2/16 img"]
    # a LogProgress made directly waits the same minute and counts "it" as tqdm does (mut53a
    # P13: a default of 1 s passed; mut60f G38: a unit of "items")
    assert P.LogProgress(range(3)).every == P.LOG_EVERY == 60.0
    assert P.LogProgress(range(3)).unit == "it"


def test_leaving_a_with_block_logs_the_final_count(caplog, monkeypatch):
    """A bar updated by hand inside ``with`` (the image cache) logs its last count when the
    block ends, once the step took ``every`` seconds (mut46d: a no-op __exit__ passed: the
    other tests iterate, which closes the bar itself)."""
    clock = iter(range(0, 1000, 50))
    monkeypatch.setattr(P.time, "monotonic", lambda: next(clock))
    caplog.set_level(logging.INFO, logger="vsent")
    with P.progress_bar(total=2, desc="image cache", unit="img", every=120) as bar:
        bar.update(1)  # 50 s
        bar.update(1)  # 100 s: not yet 120 s since the start
    assert [r.getMessage() for r in caplog.records] == ["image cache: 2/2 img (0.0 img/s)"]


# mutation round 50 (mut50b): vsent.progress mutants the suite missed


def test_a_terminal_bar_shows_its_total_name_and_unit_and_only_when_asked(monkeypatch):
    """On a terminal the tqdm bar gets the ``total``, ``desc`` and ``unit`` given (a bar
    updated by hand, as the image cache's, has no length to take its total from), and
    ``enabled`` defaults to False: a caller that does not ask draws no bar (mut50b P01-P04:
    each of the three dropped, or a default of True, passed)."""
    from tqdm import tqdm

    monkeypatch.setattr(P.sys, "stderr", _Stderr(True))
    bar = P.progress_bar(total=5, desc="image cache", unit="img", enabled=True)
    assert isinstance(bar, tqdm)
    assert (bar.total, bar.desc, bar.unit) == (5, "image cache", "img")
    bar.close()
    assert isinstance(P.progress_bar(range(2)), P.LogProgress)


def test_the_count_is_of_items_done_and_the_rate_of_a_short_step_is_exact(caplog, monkeypatch):
    """Iterating counts an item once the loop body is done with it; the rate of a line logged
    before 1 s is n / seconds, and a step of no items with a total of 0 says "0/0" (mut50b
    P07, P09, P11: the count taken before the item, a rate over at least 1 s and a total of
    0 left out passed)."""
    clock = iter([0.0, 0.25, 0.5, 0.75, 1.0, 1.25])  # started at 0 s, then a step per call
    monkeypatch.setattr(P.time, "monotonic", lambda: next(clock))
    caplog.set_level(logging.INFO, logger="vsent")
    bar = P.progress_bar(["a", "b"], desc="step", every=0)
    for i, _ in enumerate(bar):
        assert bar.n == i
    assert [r.getMessage() for r in caplog.records] == ["step: 1/2 it (4.0 it/s)",
                                                        "step: 2/2 it (4.0 it/s)"]
    caplog.clear()
    with P.progress_bar(total=0, desc="empty", every=0):
        pass
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == ["empty: 0/0 it"]


# mutation round 53 (mut53a): vsent.progress mutants the suite missed


def test_a_bar_iterated_to_its_end_inside_with_logs_nothing_when_the_block_ends(caplog,
                                                                                monkeypatch):
    """Iterating to the end closes the bar: a step that ended before ``every`` seconds stays
    silent, however long the rest of the ``with`` block takes (mut53a P10: a close that did not
    check it was closed logged "2/2" at the block's end, timed over the block)."""
    clock = iter([0, 10, 20, 30, 100])  # start, 2 updates, the loop's close, the block's end
    monkeypatch.setattr(P.time, "monotonic", lambda: next(clock))
    caplog.set_level(logging.INFO, logger="vsent")
    with P.progress_bar(range(2), desc="step", every=60) as bar:
        for _ in bar:
            pass
    assert bar.n == 2 and caplog.records == []
