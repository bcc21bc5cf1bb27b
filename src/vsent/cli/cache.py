"""``vsent cache``: what the cache folder holds; ``--clean DAYS`` removes what was not used.

Thin layer over :mod:`vsent.data.cache_folder`.
"""

from __future__ import annotations

import argparse
import math


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cache", help="list the cache folder's entries; --clean DAYS removes unused ones",
        description="The cache folder ($VSENT_CACHE, default ~/.cache/vsent) keeps decoded "
                    "images, backbone features, hand-crafted features and proposals; vsent "
                    "never deletes them on its own. Without --clean: what it holds, by kind. "
                    "With --clean DAYS: remove the entries not used for DAYS days (0: all) "
                    "and the temporary files of killed builds (each is rebuilt when needed).")
    p.add_argument("--dir", metavar="FOLDER",
                   help="the cache folder (default: $VSENT_CACHE, else ~/.cache/vsent)")
    p.add_argument("--clean", metavar="DAYS", type=_days,
                   help="remove the entries last used more than DAYS days ago (0: every entry)")
    p.add_argument("--dry-run", action="store_true",
                   help="with --clean: list what would be removed, remove nothing")
    p.add_argument("--entries", action="store_true",
                   help="list every entry (name, size, last use), not only the totals by kind")
    p.set_defaults(func=run_cache)


def _days(text: str) -> float:
    try:
        days = float(text)
    except ValueError:
        days = math.nan
    if not (math.isfinite(days) and days >= 0):
        raise argparse.ArgumentTypeError(f"expected a number of days, 0 or more: {text!r}")
    return days


def run_cache(args: argparse.Namespace) -> int:
    from vsent.data.cache import cache_dir_default
    from vsent.data.cache_folder import cache_entries, clean_cache
    from vsent.errors import EXIT_ITEMS_FAILED, VsentError
    from vsent.files import expand_user

    if args.dry_run and args.clean is None:
        raise VsentError("--dry-run goes with --clean DAYS")
    if args.entries and args.clean is not None:  # (--clean lists what it removes)
        raise VsentError("--entries lists the folder; --clean DAYS lists what it removes")
    root = expand_user(args.dir) if args.dir else cache_dir_default()
    if args.clean is None:
        entries = cache_entries(root)
        print(f"cache folder: {root}" + ("" if root.exists() else " (none yet)"))
        if args.entries:
            for e in entries:
                print(f"  {_when(e.last_used)}  {_mb(e.size):>10}  {e.path.relative_to(root)}")
        _print_totals(entries)
        if entries:
            print("vsent cache --clean DAYS removes the entries not used for DAYS days")
        return 0
    before = sum(e.size for e in cache_entries(root))
    removed, failed = clean_cache(args.clean, root, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for e in removed:
        print(f"{verb} {e.path.relative_to(root)} ({_mb(e.size)}, last used {_when(e.last_used)})")
    for e, why in failed:
        print(f"cannot remove {e.path}: {why}")
    freed = sum(e.size for e in removed)
    print(f"{root}: {verb} {len(removed)} {_entries(len(removed)).rstrip()}, {_mb(freed)}; "
          f"{_mb(before - freed)} left")
    return EXIT_ITEMS_FAILED if failed else 0


def _print_totals(entries: list) -> None:
    kinds: dict[str, list] = {}
    for e in entries:
        kinds.setdefault(e.kind, []).append(e)
    for kind, group in sorted(kinds.items()):
        first, last = min(e.last_used for e in group), max(e.last_used for e in group)
        print(f"  {kind:<10} {len(group):>5} {_entries(len(group))} "
              f"{_mb(sum(e.size for e in group)):>10}  "
              f"last used {_when(first)} .. {_when(last)}")
    print(f"  {'total':<10} {len(entries):>5} {_entries(len(entries))} "
          f"{_mb(sum(e.size for e in entries)):>10}")


def _entries(n: int) -> str:
    return "entry  " if n == 1 else "entries"  # (padded: the columns stay aligned)


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _when(t: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t))
