"""vsent.progress: without a terminal, a long step logs a line now and then instead of a bar."""

from __future__ import annotations

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
            bar.update(1)
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
