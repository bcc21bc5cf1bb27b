"""``vsent card``: print the model card of a checkpoint or of an export of one (Markdown or
JSON)."""

from __future__ import annotations

import argparse


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
    p.add_argument("--out", metavar="FILE", help="write to FILE instead of standard output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from vsent.errors import VsentError
    from vsent.files import atomic_write_text, check_not_an_input
    from vsent.models.card import card_markdown, model_card

    if args.out:
        check_not_an_input(args.out, [args.checkpoint])
    card = model_card(args.checkpoint)
    text = json.dumps(card, indent=2) + "\n" if args.format == "json" else card_markdown(card)
    if args.out:
        try:
            atomic_write_text(args.out, text)
        except OSError as exc:
            raise VsentError(f"--out {args.out}: cannot write it ({exc.strerror})") from None
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
