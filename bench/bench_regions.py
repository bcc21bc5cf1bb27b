"""Benchmark of the affective-region pipeline: cost per image of each stage.

For the first ``--n`` JPEGs of ``--data`` (default ``$VSENT_DATA``, else
``../shared/datasets/twitter1``; where that default folder is absent, generated blocky scenes,
and the JSON says which: ``data``, ``images_source``; a ``--data`` without images stops) it
times, per image (a model that fails is recorded with its error in ``failed`` and the others
still run; exit status 1):

* proposals: the gradient edge map, then EdgeBoxes, at each ``--sides`` (longer side in
  pixels of the image the proposals are computed on), and how many boxes came out;
* crop: cutting the N boxes from the original image and warping them to the model's input;
* score: the N crops through each model of ``--models`` (random weights: the cost does not
  depend on them) in one pass of ``--batch-size``; the boxes are those of vsent's default
  side (``ProposalConfig.max_side``, recorded as ``scoring_proposal_side``) whatever
  ``--sides`` is. The whole image's own pass, which ``vsent regions`` adds, is not counted.

Usage: ``uv run python bench/bench_regions.py [--n 10] [--n-proposals 100]
[--sides 256 320 500] [--models smallcnn caffenet] [--data ../shared/datasets/twitter1]
[--out bench/results/regions.json]``
"""

from __future__ import annotations

import argparse
import sys
import time

import cv2
import numpy as np
import torch
from _common import (
    GENERATED,
    RESULTS,
    Parts,
    add_data_arg,
    dataset_jpegs,
    one_line_errors,
    write_json,
)

from vsent.analyses.proposals import ProposalConfig, gradient_edges, make_edge_detector, propose
from vsent.analyses.regions import crop_regions, score_images
from vsent.data.images import load_rgb
from vsent.models import create_model
from vsent.provenance import versions


def _images(data: str | None, n: int) -> tuple[list[np.ndarray], dict]:
    """The first ``n`` images of the data set (or generated scenes, see the docstring) and
    their record (``data``, ``images_source``)."""
    paths, source = dataset_jpegs(data, n)
    if paths:
        return [np.asarray(load_rgb(p)) for p in paths], source
    assert source["images_source"] == GENERATED
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):  # blocky synthetic scenes: EdgeBoxes needs edges
        img = cv2.resize(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8), (500, 375),
                         interpolation=cv2.INTER_NEAREST)
        out.append(img)
    return out, source


def bench_proposals(images, sides, n_proposals) -> dict:
    det = make_edge_detector()
    res = {}
    for side in sides:
        edge_t, total_t, counts = [], [], []
        for img in images:
            scale = min(1.0, side / max(img.shape[:2]))
            small = cv2.resize(img, (round(img.shape[1] * scale), round(img.shape[0] * scale)),
                               interpolation=cv2.INTER_AREA)
            t = time.perf_counter()
            gradient_edges(small)
            edge_t.append(time.perf_counter() - t)
            p = propose(img, ProposalConfig(n_proposals=n_proposals, max_side=side), det)
            total_t.append(p.seconds)
            counts.append(len(p.boxes))
        res[str(side)] = {"edges_s": float(np.mean(edge_t)),
                          "edges_plus_edgeboxes_s": float(np.mean(total_t)),
                          "boxes_mean": float(np.mean(counts))}
        print(f"proposals @{side}: edges {1000 * res[str(side)]['edges_s']:.0f} ms, "
              f"edges + EdgeBoxes {1000 * res[str(side)]['edges_plus_edgeboxes_s']:.0f} ms, "
              f"{res[str(side)]['boxes_mean']:.0f} boxes", file=sys.stderr)
    return res


def bench_scoring(images, models, n_proposals, batch_size, side, parts: Parts) -> dict:
    props = [propose(img, ProposalConfig(n_proposals=n_proposals, max_side=side))
             for img in images]
    return {name: parts.run(f"{name} scoring", _score_one, name, images, props, batch_size,
                            n_proposals)
            for name in models}


def _score_one(name, images, props, batch_size, n_proposals) -> dict:
    model = create_model(name).eval()
    size = model.info.preprocess.resize
    crop_t, score_t = [], []
    score_images(model, crop_regions(images[0], props[0].boxes[:2], size))  # warm-up
    for img, p in zip(images, props, strict=True):
        t = time.perf_counter()
        crops = crop_regions(img, p.boxes, size)
        crop_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        score_images(model, crops, batch_size=batch_size)
        score_t.append(time.perf_counter() - t)
    res = {"crop_s": float(np.mean(crop_t)), "score_s": float(np.mean(score_t)),
           "input": f"{size} -> {model.info.preprocess.crop}"}
    print(f"{name}: crop {1000 * res['crop_s']:.0f} ms, score {1000 * res['score_s']:.0f} ms "
          f"per image (up to {n_proposals} regions)", file=sys.stderr)
    return res


@one_line_errors
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arg(ap)
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--n-proposals", type=int, default=100)
    ap.add_argument("--sides", type=int, nargs="+", default=[256, 320, 500])
    ap.add_argument("--models", nargs="+", default=["smallcnn", "caffenet"])
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--out", default=RESULTS / "regions.json")
    args = ap.parse_args(argv)
    images, source = _images(args.data, args.n)
    parts = Parts()
    result = {
        **source, "n_images": len(images), "n_proposals": args.n_proposals,
        "torch_threads": torch.get_num_threads(),
        "proposals": bench_proposals(images, args.sides, args.n_proposals),
        "scoring_proposal_side": ProposalConfig.max_side,
        "scoring": bench_scoring(images, args.models, args.n_proposals, args.batch_size,
                                 ProposalConfig.max_side, parts),
        "versions": versions(),
        "failed": parts.failed,
    }
    out = write_json(args.out, result)
    print(f"written {out}", file=sys.stderr)
    return parts.exit_status("bench_regions.py", out)


if __name__ == "__main__":
    sys.exit(main())
