"""The public API of ``vsent reproduce`` in one namespace (the code lives in the modules below).

* :mod:`vsent.reports.runner`: the paper registry, plans, the step runner (resume, ``only``,
  weights fallback) and :func:`reproduce`.
* :mod:`vsent.reports.render`: rows, tables, cells, ``report.md``, the figure helper.
* one module per paper, registered by name: :mod:`~vsent.reports.campos2015`,
  :mod:`~vsent.reports.you2015`, :mod:`~vsent.reports.sun2016`.
"""

from __future__ import annotations

from vsent.reports.campos2015 import CAMPOS_VARIANT_LABELS, CAMPOS_VARIANTS, Campos2015Plan
from vsent.reports.render import (
    NOT_AVAILABLE,
    NOT_IN_PAPER,
    NOT_RECORDED,
    NOT_REPRODUCED,
    NOT_RUN,
    RANDOM_LABEL,
    lookup,
    ours_cell,
    paper_cell,
    report_markdown,
    weights_label,
)
from vsent.reports.runner import (
    PAPERS,
    Paper,
    command_line,
    get_paper,
    load_papers,
    make_plan,
    paper_names,
    register_paper,
    reproduce,
    step_names,
)
from vsent.reports.sun2016 import Sun2016Plan
from vsent.reports.you2015 import YOU_FEATURES, You2015Plan

load_papers()

__all__ = [
    "CAMPOS_VARIANTS", "CAMPOS_VARIANT_LABELS", "Campos2015Plan", "NOT_AVAILABLE",
    "NOT_IN_PAPER", "NOT_RECORDED", "NOT_REPRODUCED", "NOT_RUN", "PAPERS", "Paper",
    "RANDOM_LABEL", "Sun2016Plan", "YOU_FEATURES", "You2015Plan", "command_line", "get_paper",
    "load_papers", "lookup", "make_plan", "ours_cell", "paper_cell", "paper_names",
    "register_paper", "report_markdown", "reproduce", "step_names", "weights_label",
]
