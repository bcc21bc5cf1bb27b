"""Small checks and defaults the data modules share (one copy, so they cannot drift apart)."""

from __future__ import annotations

import numbers
import os
from typing import Any

import numpy as np

__all__ = ["default_workers", "is_int_at_least", "is_real", "positive_int", "usable_cpus"]

#: Most threads a data helper starts by default: decoding and hashing stop scaling well past
#: this, and a 128-core node should not start 128 threads per call.
MAX_DEFAULT_WORKERS = 32


def is_int_at_least(value: Any, minimum: int) -> bool:
    """``value`` is an integer (Python or numpy, not a bool) >= ``minimum``."""
    return (not isinstance(value, bool) and isinstance(value, (int, np.integer))
            and value >= minimum)


def is_real(value: Any) -> bool:
    """``value`` is a real number (Python or numpy, not a bool): ``"0.5"`` and True are not
    (a comparison of "0.5" fails as a TypeError; True would pass as 1 silently)."""
    return not isinstance(value, bool) and isinstance(value, numbers.Real)


def positive_int(value: Any, what: str, error: type[Exception] = ValueError) -> int:
    """``int(value)``, or ``error("<what> must be a positive integer, got <value!r>")``."""
    if not is_int_at_least(value, 1):
        raise error(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity: a container's cpuset, a ``taskset``;
    not a CPU quota such as ``docker --cpus``), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def default_workers(workers: int | None = None) -> int:
    """``workers``, or when it is None/0 one thread per usable CPU (:func:`usable_cpus`), at
    most :data:`MAX_DEFAULT_WORKERS`: the one rule of every decoding and feature thread pool
    (the image cache, ``vsent predict``, ``vsent serve``, hand-crafted features, cues)."""
    return workers or min(MAX_DEFAULT_WORKERS, usable_cpus())
