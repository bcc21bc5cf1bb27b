"""``vsent card``: print the model card of a checkpoint or of an export of one (Markdown or
JSON)."""

from __future__ import annotations

import argparse
from pathlib import Path

from vsent.cli.common import out_path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "card", help="print the model card of a checkpoint or an export",
        description="Architecture and family, initial weights (source, tag, licence), training "
                    "data, the cross-validated metrics of its run, preprocessing and versions. "
                    "A checkpoint inside a crossval run directory (fold<k>/model.pt) gets the "
                    "run's metrics. An ONNX or TorchScript export (vsent export) gets the card "
                    "stored in it when it was written, and what its metadata states.",
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT",
                   help="checkpoint (model.pt), or an export of one (.onnx, .ts)")
    p.add_argument("--format", choices=("markdown", "json"), default="markdown",
                   help="default markdown")
    p.add_argument("--out", metavar="FILE", type=out_path,
                   help="write to FILE instead of standard output (an earlier card is "
                        "replaced; any other file only with --overwrite)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out that is not a model card")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from vsent.errors import VsentError
    from vsent.files import (
        atomic_write_text,
        check_not_an_input,
        check_replaceable,
        make_folder,
    )
    from vsent.models.card import card_markdown, model_card

    if args.overwrite and not args.out:  # (standard output has nothing to replace)
        raise VsentError("--overwrite goes with --out FILE")
    if args.out:
        check_not_an_input(args.out, [args.checkpoint])
        # a checkpoint or a CSV given by mistake is kept (unless --overwrite)
        check_replaceable(Path(args.out), "--out", "model card", _is_card,
                          overwrite=args.overwrite)
    card = model_card(args.checkpoint)
    text = json.dumps(card, indent=2) + "\n" if args.format == "json" else card_markdown(card)
    if args.out:
        try:  # its folder made, as export and predict make theirs
            make_folder(Path(args.out).parent)
            atomic_write_text(args.out, text)
        except OSError as exc:
            raise VsentError(f"--out {args.out}: cannot write it ({exc.strerror})") from None
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _is_card(path: Path) -> bool:
    """Whether ``path`` holds what ``vsent card`` writes (Markdown or JSON)."""
    import json

    from vsent.models.card import CARD_FORMAT

    try:
        text = path.read_text()
    except (OSError, ValueError):  # a folder, a binary file
        return False
    if text.startswith("# Model card: "):
        return True
    try:
        return json.loads(text).get("card_format") == CARD_FORMAT
    except (ValueError, AttributeError):
        return False
