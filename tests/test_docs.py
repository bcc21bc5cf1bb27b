"""The README and docs/ stay true to the code: their command lines parse, the layout names
what exists, their links reach their files and headings.

Command lines are those of fenced and indented blocks (where users copy commands from; inline
mentions such as `vsent predict` name a command, not a full line): an option renamed or
removed in the code must not leave them a command that fails (the accuracy plan once named
``vsent fuse --run ... --with ...``, options that never existed). Parsing is argparse only:
nothing runs, nothing is read.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import re
import shlex
from pathlib import Path

import pytest

from vsent.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

#: A command line: at the start of a line (after a prompt or indentation), ``vsent ...`` or
#: ``uv run [options] vsent ...``.
COMMAND = re.compile(r"^\s*(?:\$ )?(?:uv run (?:--[\w-]+ )*)?vsent (?P<args>.*)$")

#: Placeholders the docs write for values the reader chooses, and what stands in for them.
PLACEHOLDERS = {
    "...": None,  # "the options above": dropped
    "seedS": "seed0", "seedK": "seed1", "--seed S": "--seed 0", "--seed K": "--seed 1",
    "--clean DAYS": "--clean 7", "[--dry-run]": "--dry-run",
}


def doc_commands() -> list[tuple[str, int, str]]:
    """(file name, line number, the arguments after ``vsent``) of every command line in a
    fenced or indented block of the docs; continuation lines (``\\``) are joined."""
    found = []
    for doc in DOCS:
        lines = doc.read_text(encoding="utf-8").splitlines()
        in_fence = False
        i = 0
        while i < len(lines):
            line = lines[i]
            start = i
            if line.lstrip().startswith("```"):
                in_fence = not in_fence
                i += 1
                continue
            while line.endswith("\\") and i + 1 < len(lines):
                i += 1
                line = line[:-1] + " " + lines[i].strip()
            i += 1
            if not (in_fence or line.startswith("    ")):
                continue
            m = COMMAND.match(line)
            if m:
                found.append((doc.name, start + 1, m.group("args")))
    return found


def argv_of(args: str) -> list[str]:
    """The argument vector of one documented command: the shell's pipes, redirections and
    comments and a trailing note cut off, placeholders replaced."""
    args = re.split(r"\s(?:\||&&|>|2>|#)\s?", args)[0]
    args = re.sub(r"\s{2,}\(.*\)$", "", args)  # a note after the command: "   (K = 1..4)"
    for placeholder, value in PLACEHOLDERS.items():
        args = args.replace(placeholder, value or "")
    return shlex.split(args)


COMMANDS = doc_commands()


def test_the_docs_hold_commands():
    """The extraction itself works: the README's two set-up commands are make targets, but
    its sections hold dozens of vsent command lines (a regex that found none would pass
    every case below by having no case)."""
    per_file = {name for name, _, _ in COMMANDS}
    assert {"README.md", "accuracy_plan.md"} <= per_file
    assert sum(name == "README.md" for name, _, _ in COMMANDS) >= 30


@pytest.mark.parametrize("doc,line,args", COMMANDS, ids=[f"{d}:{n}" for d, n, _ in COMMANDS])
def test_a_documented_command_parses(doc, line, args):
    parser = build_parser()
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            parser.parse_args(argv_of(args))
    except SystemExit as e:
        if e.code:  # (--help exits 0)
            pytest.fail(f"{doc}:{line}: vsent {args}\n{err.getvalue().strip()}")


def test_a_wrong_option_fails_the_check():
    """The check can fail: an option the CLI does not have is refused."""
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
        build_parser().parse_args(argv_of("fuse runs/q --with gch+bow"))


# --------------------------------------------------------------------------------------------
# docs/ARCHITECTURE.md's layout: the files it lists exist and hold the functions it names


def layout_entries() -> list[tuple[str, list[str]]]:
    """(file path under src/, the ``name()`` tokens of its entry) for every ``<file>.py``
    line of ARCHITECTURE.md's Layout block (its continuation lines included)."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    block = text.split("\n## Layout\n", 1)[1].split("```")[1]
    entries: list[tuple[str, list[str]]] = []
    folder = ""
    for line in block.splitlines()[1:]:
        m = re.match(r"^(?P<indent> *)(?P<name>[\w/]+(?:\.py)?)(?: {2,}|$)(?P<rest>.*)", line)
        if m and m.group("name").endswith("/") and len(m.group("indent")) == 2:
            folder = m.group("name")  # a sub-package: the entries below are its files
            continue
        if m and m.group("name").endswith(".py"):
            if len(m.group("indent")) == 2:
                folder = ""
            entries.append((f"src/vsent/{folder}{m.group('name')}", []))
            line = m.group("rest")
        if entries:
            entries[-1][1].extend(re.findall(r"\b([A-Za-z_]\w*)\(\)", line))
    return entries


def test_the_layout_names_files_and_functions_that_exist():
    entries = layout_entries()
    assert len(entries) >= 55, entries  # the parse found the block's files
    assert sum(len(names) for _, names in entries) >= 70
    missing = []
    for path, names in entries:
        if not (ROOT / path).is_file():
            missing.append(f"{path}: no such file")
            continue
        dotted = path.removeprefix("src/").removesuffix(".py").removesuffix("/__init__")
        module = importlib.import_module(dotted.replace("/", "."))
        missing += [f"{path}: no {name}()" for name in names if not hasattr(module, name)]
    assert not missing, "docs/ARCHITECTURE.md's Layout is out of date:\n" + "\n".join(missing)


def _folder_section(block: str, folders: tuple[str, ...]) -> str:
    """The lines of the Layout block that list ``folders``' files: from the line naming the
    folder to the next line indented no deeper (a sibling); the top level's own entries
    (indented 2) for no folder. Searching the rest let another folder's file of the same
    name (analyses/pcnn.py, models/pcnn.py) stand in (review43 #5)."""
    lines = block.splitlines()
    if not folders:
        return "\n".join(line for line in lines if re.match(r"^  \S", line))
    for folder in folders:
        i = next((i for i, line in enumerate(lines)
                  if re.match(rf"^ *{re.escape(folder)}/(\s|$)", line)), None)
        if i is None:
            return ""
        indent = len(lines[i]) - len(lines[i].lstrip())
        end = next((j for j in range(i + 1, len(lines))
                    if lines[j].strip() and len(lines[j]) - len(lines[j].lstrip()) <= indent),
                   len(lines))
        lines = lines[i:end]
        lines[0] = lines[0].replace(f"{folder}/", "", 1)  # (a sub-folder's own line below)
    return "\n".join(lines)


def test_every_module_is_in_the_layout():
    """The reverse of the test above (extend43 #8: a new module missing from the map passed):
    every module under src/vsent is named in the Layout block, after its folder's name."""
    block = ARCHITECTURE.read_text(encoding="utf-8").split("## Layout", 1)[1].split("```")[1]
    src = ROOT / "src" / "vsent"
    missing = []
    for file in sorted(src.rglob("*.py")):
        rel = file.relative_to(src)
        if rel.name in ("__init__.py", "__main__.py"):
            continue
        section = _folder_section(block, rel.parts[:-1])
        if not re.search(rf"(?<![\w./]){re.escape(rel.name)}", section):
            missing.append(str(rel))
    assert not missing, f"docs/ARCHITECTURE.md's Layout does not name {missing}"


#: Backticked names of the flows that are values, files or paths, not vsent's names.
_NOT_NAMES = re.compile(r"^(cfg|info|model|engine|runs|photo)[./]|\.(json|png|py|csv|md|pt|jpg)$")


def _resolves(name: str) -> bool:
    """``name`` (``a.b``, ``a/b.c``: a module of vsent, of one of its packages, or a name of
    vsent's top-level package, then attributes) exists."""
    parts = re.split(r"[./]", name.removeprefix("vsent."))
    for package in ("vsent", "vsent.data", "vsent.models", "vsent.analyses"):
        for i in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join([package, *parts[:i]]))
            except ImportError:
                continue
            for attr in parts[i:]:
                obj = getattr(obj, attr, None)
            if obj is not None:
                return True
    return False


def test_the_flows_name_functions_that_exist():
    """Every dotted name in "The flow of ..." sections (`crossval._run_fold`,
    `models.checkpoint.read_checkpoint`, `Predictor` aside) is one the code has (extend43 #2:
    the predict flow named a path the code no longer takes)."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    flows = text.split("## The flow of one image", 1)[1].split("## Contracts", 1)[0]
    names = {m.group(1) for code in re.findall(r"`([^`]+)`", flows)
             for m in re.finditer(r"(?<![\w./<])([a-z_]+(?:[./][A-Za-z_]\w*)+)(?=[(\s,)]|$)",
                                  code)}
    names = {n for n in names if not _NOT_NAMES.search(n)}
    assert len(names) >= 40, names  # the parse found the flows' names
    assert not [n for n in sorted(names) if not _resolves(n)]
    assert not _resolves("models.checkpoint.no_such_function")

# --------------------------------------------------------------------------------------------
# links: every relative link of the README and docs/ reaches a file, and its #anchor a heading


def heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a Markdown text's headings: lower case, punctuation dropped,
    spaces as hyphens (``## GPU checks`` -> ``gpu-checks``), a repeated one numbered
    (``-1``, ``-2``); a ``# comment`` line inside a fenced block is no heading."""
    anchors: set[str] = set()
    in_fence = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        m = re.match(r"^#{1,6} (.+)$", line)
        if in_fence or not m:
            continue
        anchor = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
        n, unique = 0, anchor
        while unique in anchors:
            n += 1
            unique = f"{anchor}-{n}"
        anchors.add(unique)
    return anchors


def test_heading_anchors_are_githubs():
    text = "# A b\n## GPU checks: (1)\n```bash\n# not a heading\n```\n## A b\n"
    assert heading_anchors(text) == {"a-b", "gpu-checks-1", "a-b-1"}


def test_every_relative_link_reaches_its_file_and_heading():
    broken, checked = [], 0
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"^[a-z]+:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            file = (doc.parent / path) if path else doc
            checked += 1
            if not file.exists():
                broken.append(f"{doc.name}: {target} (no such file)")
            elif anchor and file.suffix == ".md" and \
                    anchor not in heading_anchors(file.read_text(encoding="utf-8")):
                broken.append(f"{doc.name}: {target} (no such heading)")
    assert checked >= 50
    assert not broken, "\n".join(broken)


def test_the_package_docstring_names_modules_and_functions_that_exist():
    """api60: ``help(vsent)`` was one line; its map of the package names each module's entry
    points, which must exist (a rename would leave the map pointing nowhere)."""
    import vsent

    bullets = [line for line in vsent.__doc__.splitlines() if line.startswith("* ")]
    assert len(bullets) >= 6
    for line in bullets:
        module = importlib.import_module(re.search(r":mod:`(vsent[\w.]*)`", line).group(1))
        for name in re.findall(r"``(\w+)``", line):
            assert hasattr(module, name), (module.__name__, name)
        for other in re.findall(r":mod:`(vsent[\w.]*)`", line)[1:]:
            importlib.import_module(other)
