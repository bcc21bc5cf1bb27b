"""Reproduction reports (``vsent reproduce``): see :mod:`vsent.reports.runner`.

A paper is a module of this package named ``<author><year>`` (``campos2015.py``), found by
:func:`paper_modules` without importing it, so ``vsent reproduce --help`` stays fast and adding
a paper touches one new file.
"""

from __future__ import annotations

import pkgutil
import re

#: Module names of this package that hold a paper (``<letters><year>``, e.g. ``sun2016``).
PAPER_MODULE = re.compile(r"^[a-z]+\d{4}[a-z]?$")


def paper_modules() -> tuple[str, ...]:
    """Names of the paper modules of this package (= the paper names), sorted; not imported."""
    return tuple(sorted(m.name for m in pkgutil.iter_modules(__path__)
                        if PAPER_MODULE.match(m.name)))
