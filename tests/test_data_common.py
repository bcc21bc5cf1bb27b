"""vsent.data._common: the one positive-integer check and default thread count of the data
modules (audit_data23 #12)."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

from vsent.data._common import MAX_DEFAULT_WORKERS, default_workers, is_int_at_least, positive_int
from vsent.data.cache import cache_images
from vsent.data.images import resize_rgb
from vsent.errors import VsentError


@pytest.mark.parametrize("value", [1, 7, np.int64(3), np.uint8(1)])
def test_positive_ints_pass(value):
    assert positive_int(value, "size") == int(value)
    assert type(positive_int(value, "size")) is int


@pytest.mark.parametrize("value", [0, -2, 2.0, True, "3", None])
def test_other_values_are_refused_with_their_repr(value):
    with pytest.raises(ValueError, match=f"^size must be a positive integer, got "
                                         f"{re.escape(repr(value))}$"):
        positive_int(value, "size")
    with pytest.raises(VsentError, match="Preprocess.crop must be a positive integer"):
        positive_int(value, "Preprocess.crop", VsentError)


def test_is_int_at_least():
    assert is_int_at_least(2, 2) and is_int_at_least(np.int32(5), 2)
    assert not is_int_at_least(1, 2) and not is_int_at_least(True, 0)
    assert not is_int_at_least(2.0, 2) and not is_int_at_least("2", 2)


def test_default_workers(monkeypatch):
    assert default_workers(3) == 3
    monkeypatch.setattr(os, "cpu_count", lambda: 64)  # the host's; this process may use 4
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(4)), raising=False)
    assert default_workers(None) == default_workers(0) == default_workers() == 4
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(256)), raising=False)
    assert default_workers(None) == MAX_DEFAULT_WORKERS == 32
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)  # not on Linux
    assert default_workers(None) == 32
    monkeypatch.setattr(os, "cpu_count", lambda: 6)  # every CPU, below the cap (mut54b)
    assert default_workers(None) == 6
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert default_workers(None) == 1


def test_the_callers_keep_their_messages():
    img = np.zeros((4, 4, 3), np.uint8)
    for bad in (0, 2.5):
        with pytest.raises(ValueError, match=f"size must be a positive integer, got {bad!r}"):
            resize_rgb(img, bad)
        with pytest.raises(ValueError, match=f"size must be a positive integer, got {bad!r}"):
            cache_images([img], bad)
