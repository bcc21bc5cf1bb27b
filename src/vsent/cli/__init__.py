"""The ``vsent`` command line: one sub-command module per stage, each a thin layer over the API.

Exit status: 0 success; 2 user error (bad option, bad data, missing weights; one line on
stderr, no traceback); 3 the command finished but some items failed (see its output);
130 interrupted (Ctrl-C) and 143 terminated (SIGTERM): the run directory keeps what finished,
and the same command (``--resume`` where a command has it) continues.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from vsent import __version__
from vsent.errors import EXIT_USER_ERROR, LAUNCHED_BY_VSENT, VsentError
from vsent.files import DISK_FULL

#: Sub-command modules under ``vsent.cli``; each defines ``register(subparsers)`` which adds
#: its parser and sets ``func=<callable(args) -> int>`` as default. These modules import only
#: argparse, the standard library, :mod:`vsent.cli.common` and torch-free records
#: (:mod:`vsent.presets`); ``func`` imports the heavy modules, so ``vsent --help`` and
#: ``vsent COMMAND --help`` answer without loading torch, OpenCV, matplotlib or scikit-learn
#: (tests/test_cli.py checks it).
COMMANDS = (
    "crossval",  # also finetune and models
    "predict",
    "pcnn",  # also pcnn-transfer
    "regions",
    "explain",
    "layers",
    "baselines",
    "reproduce",
    "serve",
    "export",
    "card",
    "fuse",
    "ensemble",
    "compare",
    "cache",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vsent", description="Visual sentiment prediction (Campos 2015, You 2015, Sun 2016).",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"vsent {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"vsent.cli.{name}").register(sub)
    for command in sub.choices.values():
        # no prefixes: crossval's --fold would silently be taken for --folds
        command.allow_abbrev = False
    parser.commands = sub.choices  # (a misspelt option is said with its command's usage)
    return parser


#: Commands that write nothing to continue (a server, a file written whole or not at all, a
#: printed answer): stopped, they say so without "what was written is kept".
KEEP_NOTHING = frozenset({"serve", "export", "card", "compare", "models", "cache"})


class Terminated(KeyboardInterrupt):
    """SIGTERM (``timeout``, ``docker stop``, a scheduler ending the job), stopped as Ctrl-C."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def how_to_continue(args: argparse.Namespace) -> str:
    """The end of the interrupt message: how the same command continues what it wrote."""
    resume = getattr(args, "resume", None)
    if resume is None or resume:  # no --resume (run again: it continues), or given already
        return ": the same command continues it"
    out = getattr(args, "out", None)
    if out in (None, "-") and getattr(args, "command", None) == "predict":
        return ""  # predict wrote to standard output: nothing to continue
    if out is not None and Path(out).exists() and not (Path(out).is_file()
                                                       or Path(out).is_dir()):
        return ""  # a pipe or a device: nothing to continue
    if getattr(args, "overwrite", False):  # (the two exclude each other)
        return ": the same command with --resume instead of --overwrite continues it"
    return ": the same command with --resume continues it"


def main(argv: list[str] | None = None) -> int:
    if sys.stderr is None:  # started with descriptor 2 closed (``2>&-``, a daemon): the
        # messages go nowhere; print(..., file=None) would write them into standard output
        # (predict's rows), and the progress checks would fail on None.isatty()
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)
    # vsent's lines and the libraries' warnings: a library's info lines are not for the
    # user (torch's exit hook printed "FakeTensor cache stats" after an early interrupt)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    vsent_log = logging.getLogger("vsent")
    if vsent_log.level == logging.NOTSET:  # (a level a calling program set is its own)
        vsent_log.setLevel(logging.INFO)
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said with the command's usage line, not vsent's
        parser.commands.get(args.command, parser).error(
            f"unrecognized arguments: {' '.join(unknown)}")
    # the words as typed: whether an option was given, not only its value (crossval --resume)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    handles_term = threading.current_thread() is threading.main_thread()
    on_term = signal.signal(signal.SIGTERM, _terminate) if handles_term else None
    try:
        return int(args.func(args) or 0)
    except VsentError as e:
        print(f"vsent: error: {e}{_missing_path_hint(args, e)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt as e:
        return _interrupted(args, e)
    except BrokenPipeError:  # output piped into head & co., which stopped reading
        sys.stderr.close()
        return 0
    except Exception as e:
        # an interrupt that came inside a library's write (torch.save's zip writer) may end
        # as that library's error about the write it left: still the interrupt
        stop = _interrupt_behind(e)
        if stop is not None:
            return _interrupted(args, stop)
        full = _disk_full(e)
        if full is None:
            raise
        print(f"vsent: error: {full}: free some space"
              f"{_kept(args) or ' and run the command again'}", file=sys.stderr)
        return EXIT_USER_ERROR
    finally:
        if handles_term:  # (a server installs its own while it runs)
            signal.signal(signal.SIGTERM, signal.SIG_DFL if on_term is None else on_term)


def _missing_path_hint(args: argparse.Namespace, e: VsentError) -> str:
    """What to do when a path nobody typed is missing: one a resumed run was started with
    (its data or checkpoint moved since), or the default ``--data`` (the message named a
    ``../shared/...`` path the user never gave)."""
    from vsent.cli.common import DEFAULT_DATA_ENV, stored_run, typed

    stored = stored_run(args) if getattr(args, "resume", False) else {}
    for key in ("data", "model"):  # (crossval's "model" is an architecture's name: no match)
        path = stored.get(key)
        if (isinstance(path, str) and not typed(args, f"--{key}")
                and str(e).startswith(f"{path}: no such file")):
            return (f" (the --{key} {args.out} was started with: if it moved, a link at that "
                    "path to its new place continues the run)")
    data = getattr(args, "data", None)
    if not isinstance(data, str) or typed(args, "--data") or not str(e).startswith(
            f"{data}: no such file or directory"):
        return ""
    if os.environ.get(DEFAULT_DATA_ENV):
        return (f" (the default --data, from {DEFAULT_DATA_ENV}: give the dataset's folder "
                f"with --data, or correct {DEFAULT_DATA_ENV})")
    return (f" (the default --data: give the dataset's folder with --data, or set "
            f"{DEFAULT_DATA_ENV})")


def _interrupted(args: argparse.Namespace, e: KeyboardInterrupt) -> int:
    """The one line and exit status (130, or 143 for SIGTERM) of an interrupted command."""
    # a run directory keeps its finished folds and epochs, predict --out its rows; layers
    # and fuse have no --resume: they continue when run again
    what = "terminated" if isinstance(e, Terminated) else "interrupted"
    if not os.environ.get(LAUNCHED_BY_VSENT):  # a rank of --nproc: its launcher says it
        print(f"vsent: {what}{_kept(args)}", file=sys.stderr)
    return 128 + (signal.SIGTERM if isinstance(e, Terminated) else signal.SIGINT)


def _kept(args: argparse.Namespace) -> str:
    """What a stopped or failed command says it leaves: "; what was written is kept" and how
    to continue (:func:`how_to_continue`), or nothing for :data:`KEEP_NOTHING`."""
    if getattr(args, "command", None) in KEEP_NOTHING:
        return ""
    out = getattr(args, "out", None)
    if isinstance(out, str) and out != "-" and not (os.path.isfile(out) or os.path.isdir(out)):
        # stopped before --out was written, or it is a pipe or a device: nothing
        # kept to continue
        return ""
    return f"; what was written is kept{how_to_continue(args)}"


def _disk_full(e: BaseException) -> str | None:
    """What a write that found its disk (or quota) full says, when ``e`` is one or was raised
    while handling one (its ``__context__`` chain): ``"<file>: no space left on device"``.
    numpy's short write says it without an errno or a file: "cannot write (152576 requested
    and 145376 written: is the disk full?)"."""
    for x in _context_chain(e):
        if isinstance(x, OSError) and x.errno in DISK_FULL:
            what = os.strerror(x.errno).lower()
            return f"{x.filename}: {what}" if x.filename else what
        if isinstance(x, OSError) and x.errno is None and re.fullmatch(
                r"\d+ requested and \d+ written", str(x)):
            return f"cannot write ({x}: is the disk full?)"
    return None


def _interrupt_behind(e: BaseException) -> KeyboardInterrupt | None:
    """The KeyboardInterrupt (or :class:`Terminated`) during whose handling ``e`` was raised,
    if any (its ``__context__`` chain)."""
    return next((x for x in _context_chain(e) if isinstance(x, KeyboardInterrupt)), None)


def _context_chain(e: BaseException | None) -> Iterator[BaseException]:
    """``e``, then the exception it was raised while handling, and so on (``__context__``),
    each once (a cycle ends the walk)."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__context__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
