"""Every vsent name the code imports, or reads from a module it imported, exists.

Many imports sit inside functions (so that ``vsent --help`` stays light, or an optional
package loads only when used); one whose target was renamed fails only when that function
runs, which for a benchmark's child process is never under pytest (``bench_layers`` imported
a renamed ``extract_features`` for months). This reads every ``import`` statement, and every
``module.name`` read through a module the file imported (``L.DEFAULT_CS``), instead.
"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the top-level packages and modules of this repository that code imports by name
OWN = ("vsent", "_common", "conftest")


def _imports(tree: ast.AST):
    """(line, module, name or None) of each import of one of OWN's modules in ``tree``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] in OWN:
            for alias in node.names:
                yield node.lineno, node.module, alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in OWN:
                    yield node.lineno, alias.name, None


def _optional(exc: ImportError) -> bool:
    """Whether ``exc`` is an optional package missing here, not one of OWN's modules (the
    tests of that extra skip as well)."""
    missing = exc.name if isinstance(exc, ModuleNotFoundError) else None
    return bool(missing) and missing.split(".")[0] not in OWN


def _missing(module: str, name: str | None) -> str | None:
    """Why ``from module import name`` (``import module`` for None) would fail, else None
    (None too when an optional package the module needs is not installed here)."""
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        return None if _optional(exc) else f"module {module}: {exc}"
    if name is None or name == "*" or hasattr(mod, name):
        return None
    try:  # a sub-module: ``from vsent import cli``
        importlib.import_module(f"{module}.{name}")
    except ImportError as exc:
        return None if _optional(exc) else f"{module} has no {name}"
    return None


def _module_reads(tree: ast.AST):
    """(line, module, name) of each ``alias.name`` read where ``alias`` is a module of OWN
    the file imported (``import vsent.analyses.layers as L``, ``from vsent.analyses import
    cues``) and never binds to anything else (a local ``fusion = ...`` is no module)."""
    modules: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update({a.asname: a.name for a in node.names
                            if a.asname and a.name.split(".")[0] in OWN})
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] in OWN:
            for a in node.names:
                try:
                    importlib.import_module(f"{node.module}.{a.name}")
                except ImportError:  # a function or class, not a module
                    continue
                modules[a.asname or a.name] = f"{node.module}.{a.name}"
    bound = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)
             and isinstance(n.ctx, ast.Store)}
    bound |= {a.arg for n in ast.walk(tree) if isinstance(n, ast.arguments)
              for a in [*n.posonlyargs, *n.args, *n.kwonlyargs, n.vararg, n.kwarg] if a}
    bound |= {n.name for n in ast.walk(tree)
              if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load) \
                and isinstance(node.value, ast.Name) and node.value.id in modules \
                and node.value.id not in bound:
            yield node.lineno, modules[node.value.id], node.attr


def _wrong(path: Path) -> tuple[int, list[str]]:
    """How many names ``path`` takes from OWN's modules, and those that do not exist."""
    tree = ast.parse(path.read_text(), str(path))
    seen, wrong = 0, []
    for line, module, name in _imports(tree):
        seen += 1
        if (why := _missing(module, name)) is not None:
            wrong.append(f"{path.name}:{line}: {why}")
    for line, module, name in _module_reads(tree):
        seen += 1
        try:
            mod = importlib.import_module(module)
        except ImportError:  # (an optional package: said by the import check if it is ours)
            continue
        if not hasattr(mod, name):
            wrong.append(f"{path.name}:{line}: {module} has no {name}")
    return seen, wrong


def test_every_vsent_name_used_by_src_bench_and_tests_exists(monkeypatch):
    for folder in ("bench", "tests"):  # as bench scripts and tests import their helpers
        monkeypatch.syspath_prepend(str(ROOT / folder))
    files = [*sorted((ROOT / "src").rglob("*.py")), *sorted((ROOT / "bench").glob("*.py")),
             *sorted((ROOT / "tests").glob("*.py"))]
    assert len(files) > 100
    seen, wrong = 0, []
    for path in files:
        n, bad = _wrong(path)
        seen += n
        wrong += [f"{path.parent.relative_to(ROOT)}/{b}" for b in bad]
    assert seen > 1500
    assert not wrong, "\n".join(wrong)


def test_the_check_finds_a_renamed_name(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import vsent.analyses.layers as L\n"
                   "from vsent.analyses import probes\n\n"
                   "def f():\n    from vsent.analyses.layers import extract_features\n"
                   "    import vsent.no_such_module\n"
                   "    return L.DEFAULT_CS, L.NO_SUCH_NAME, probes.gone\n\n"
                   "def g(probes):\n    return probes.anything  # (an argument, not the module)\n")
    seen, wrong = _wrong(bad)
    assert wrong == ["bad.py:5: vsent.analyses.layers has no extract_features",
                     "bad.py:6: module vsent.no_such_module: No module named "
                     "'vsent.no_such_module'",
                     "bad.py:7: vsent.analyses.layers has no NO_SUCH_NAME"]
    assert seen == 4 + 2  # four imports; L's two reads (probes is bound by g's argument)
    assert sys.modules.get("vsent.no_such_module") is None
