"""``vsent export``: write a checkpoint as ONNX or TorchScript (checked against PyTorch)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vsent.cli.common import out_path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="export a checkpoint to ONNX or TorchScript",
        description="Write the model of a checkpoint as ONNX or TorchScript with its "
                    "preprocessing, class names and model card as metadata. Input: normalised "
                    "crops float (B, 3, crop, crop); outputs: logits and probabilities. The "
                    "export is checked against PyTorch (probabilities to 1e-4) before it is "
                    "kept. Run it with `vsent predict --engine onnx` or any ONNX runtime.",
    )
    p.add_argument("--model", required=True, metavar="CHECKPOINT",
                   help="checkpoint (model.pt) from finetune/crossval")
    p.add_argument("--format", choices=("onnx", "torchscript"), default="onnx",
                   help="default onnx")
    p.add_argument("--out", required=True, metavar="FILE", type=out_path,
                   help="file to write: .onnx for onnx; .ts, .pt or .pth for torchscript "
                        "(another ending is refused)")
    p.add_argument("--no-verify", action="store_true",
                   help="skip the comparison with PyTorch")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out that is not a vsent export (an earlier "
                        "export is replaced without it)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vsent.export import export_model
    from vsent.files import check_not_an_input

    check_not_an_input(args.out, [args.model])
    if not args.overwrite:
        _check_replaceable(Path(args.out))
    result = export_model(args.model, args.out, format=args.format, verify=not args.no_verify)
    diff = result["max_abs_diff"]
    check = "not checked" if diff is None else f"max probability difference {diff:.1e}"
    print(f"wrote {result['out']} ({result['format']}; {check})", file=sys.stderr)
    return 0


def _check_replaceable(out: Path) -> None:
    """An existing ``--out`` is replaced only when it is an earlier vsent export (links and
    devices: export_model refuses them itself)."""
    from vsent.files import check_replaceable

    if out.is_file() and not out.is_symlink():
        check_replaceable(out, "--out", "vsent export", _is_export)


def _is_export(path: Path) -> bool:
    from vsent.export import ExportError, read_metadata

    try:
        read_metadata(path)
    except (ExportError, OSError):
        return False
    return True
