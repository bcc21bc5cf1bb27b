"""Every vsent name the code imports exists.

Many imports sit inside functions (so that ``vsent --help`` stays light, or an optional
package loads only when used); one whose target was renamed fails only when that function
runs, which for a benchmark's child process is never under pytest (``bench_layers`` imported
a renamed ``extract_features`` for months). This reads every ``import`` statement instead.
"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the top-level packages and modules of this repository that code imports by name
OWN = ("vsent", "_common", "conftest")


def _imports(path: Path):
    """(line, module, name or None) of each import of one of OWN's modules in ``path``."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] in OWN:
            for alias in node.names:
                yield node.lineno, node.module, alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in OWN:
                    yield node.lineno, alias.name, None


def _missing(module: str, name: str | None) -> str | None:
    """Why ``from module import name`` (``import module`` for None) would fail, else None."""
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        return f"module {module}: {exc}"
    if name is None or name == "*" or hasattr(mod, name):
        return None
    try:  # a sub-module: ``from vsent import cli``
        importlib.import_module(f"{module}.{name}")
    except ImportError:
        return f"{module} has no {name}"
    return None


def test_every_vsent_name_imported_by_src_bench_and_tests_exists(monkeypatch):
    for folder in ("bench", "tests"):  # as bench scripts and tests import their helpers
        monkeypatch.syspath_prepend(str(ROOT / folder))
    files = [*sorted((ROOT / "src").rglob("*.py")), *sorted((ROOT / "bench").glob("*.py")),
             *sorted((ROOT / "tests").glob("*.py"))]
    assert len(files) > 100
    seen, wrong = 0, []
    for path in files:
        for line, module, name in _imports(path):
            seen += 1
            if (why := _missing(module, name)) is not None:
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {why}")
    assert seen > 500
    assert not wrong, "\n".join(wrong)


def test_the_check_finds_a_renamed_name(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from vsent.analyses.layers import extract_features\n"
                   "    import vsent.no_such_module\n")
    found = [(line, _missing(m, n)) for line, m, n in _imports(bad)]
    assert found == [(2, "vsent.analyses.layers has no extract_features"),
                     (3, "module vsent.no_such_module: No module named 'vsent.no_such_module'")]
    assert sys.modules.get("vsent.no_such_module") is None
