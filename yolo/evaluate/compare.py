"""Checkpoint A/B on the same split: per-class AP difference with a paired bootstrap 95% interval
over images, and the images ranked by how much worse B is than A.

The interval resamples images (with replacement, the same draw for A and B), so it answers
"would B still beat A on another sample of images like these?". Matching is per image, so a
resample only re-weights the detections and positives of each image: every draw is a weighted
VOC all-point AP of the one matching pass, computed for all draws at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from torch import Tensor

from yolo.metrics import match_detections


def same_weights(model_a: torch.nn.Module, model_b: torch.nn.Module) -> bool:
    """True when two models hold exactly the same parameters and buffers (names, shapes, values):
    comparing them would only compare a checkpoint with itself (e.g. last.ckpt beside best.ckpt
    after a run whose last epoch was its best)."""
    a, b = model_a.state_dict(), model_b.state_dict()
    return a.keys() == b.keys() and all(a[k].shape == b[k].shape and torch.equal(a[k], b[k]) for k in a)


@dataclass
class Comparison:
    """per_class: class, objects, AP A, AP B, dAP (B - A), low and high of the 95% interval,
    worse first; images: per image at the confidence threshold, A's and B's true and false
    positives, lost true positives, new false positives and ``worse`` (lost TP + new FP - the
    reverse), worst first; regressions: the images with worse > 0."""

    map_a: float
    map_b: float
    per_class: pd.DataFrame
    images: pd.DataFrame
    regressions: pd.DataFrame


def _weighted_ap(scores: Tensor, labels: Tensor, tp: Tensor, image: Tensor, positives: Tensor,
                 weights: Tensor, num_classes: int) -> Tensor:
    """VOC all-point AP per class under image weights. positives (Tensor[N, C]) per image;
    weights (Tensor[R, N]) -> Tensor[R, C] (nan where a draw has no positives of the class).
    With float64 scores and weights and every weight 1, the arithmetic is ``voc_evaluate``'s, so
    the APs equal it exactly."""
    r = weights.shape[0]
    out = torch.full((r, num_classes), float("nan"), dtype=torch.float64)
    npos = weights.double() @ positives.double()  # (R, C)
    for c in range(num_classes):
        mine = labels == c
        if not bool(mine.any()):
            out[:, c] = torch.where(npos[:, c] > 0, 0.0, float("nan"))
            continue
        order = torch.sort(scores[mine], descending=True, stable=True).indices
        hits = tp[mine][order]
        # Only true positives add area, and the envelope at one is the best precision at a later
        # true positive (precision only falls after a false one): false positives enter only
        # through the running weight total, read at the true positives.
        at = torch.nonzero(hits).squeeze(1)
        if at.numel() == 0:
            out[:, c] = torch.where(npos[:, c] > 0, 0.0, float("nan"))
            continue
        order = order[: int(at[-1]) + 1]  # rows after the last true positive change nothing
        w = weights[:, image[mine][order]]  # (R, D_c)
        total = torch.cumsum(w, 1)[:, at]  # (R, T_c) weight of the rows up to each true positive
        w_tp = w[:, at]
        precision = torch.where(total > 0, torch.cumsum(w_tp, 1) / total.clamp(min=1e-12), 0.0)
        envelope = torch.flip(torch.cummax(torch.flip(precision, (1,)), 1).values, (1,))
        area = torch.cumsum(envelope * w_tp, 1)[:, -1]  # summed in order, as voc_evaluate sums
        out[:, c] = torch.where(npos[:, c] > 0, area / npos[:, c].clamp(min=1e-12), float("nan"))
    return out


def compare(a: Sequence[dict], b: Sequence[dict], ground_truths: Sequence[dict], class_names: Sequence[str],
            image_ids: Sequence[str] | None = None, conf: float = 0.25, draws: int = 200,
            seed: int = 0) -> Comparison:
    """A vs B (per-image detections of the same images) against the same ground truth."""
    if not len(a) == len(b) == len(ground_truths):
        raise ValueError(f"A has {len(a)} images, B {len(b)}, the ground truth {len(ground_truths)}: "
                         "compare predictions of the same split")
    n, images = len(class_names), len(ground_truths)
    positives = torch.zeros(images, n, dtype=torch.float64)
    for i, g in enumerate(ground_truths):
        difficult = g.get("difficult")
        labels = g["labels"] if difficult is None else g["labels"][~difficult.bool()]
        positives[i] = torch.bincount(labels.long(), minlength=n).double()
    gen = torch.Generator().manual_seed(seed)
    weights = torch.ones(draws + 1, images, dtype=torch.float64)  # voc_evaluate's dtype
    draw = torch.randint(0, images, (draws, images), generator=gen)
    weights[1:] = torch.zeros(draws, images, dtype=torch.float64).scatter_add_(
        1, draw, torch.ones(draws, images, dtype=torch.float64))
    aps, matches = [], []
    for dets in (a, b):
        m = match_detections(dets, ground_truths, n)
        keep = ~m.ignored
        aps.append(_weighted_ap(m.scores[keep], m.labels[keep], m.tp[keep], m.image[keep],
                                positives, weights, n))
        matches.append(m)
    diff = aps[1] - aps[0]  # (R + 1, C); row 0 is the full split
    low = torch.nanquantile(diff[1:], 0.025, dim=0)
    high = torch.nanquantile(diff[1:], 0.975, dim=0)
    has = positives.sum(0) > 0
    per_class = pd.DataFrame({
        "class": list(class_names), "objects": positives.sum(0).long().tolist(),
        "AP A": aps[0][0].tolist(), "AP B": aps[1][0].tolist(), "dAP": diff[0].tolist(),
        "low": low.tolist(), "high": high.tolist(),
    })
    per_class["significant"] = (per_class["low"] > 0) | (per_class["high"] < 0)
    per_class = per_class.sort_values("dAP", kind="stable", na_position="last").reset_index(drop=True)
    (tp_a, fp_a), (tp_b, fp_b) = (m.per_image(images, conf) for m in matches)
    worse = (tp_a - tp_b) + (fp_b - fp_a)
    table = pd.DataFrame({
        "image": list(image_ids) if image_ids is not None else list(range(images)), "position": list(range(images)),
        "TP A": tp_a.tolist(), "TP B": tp_b.tolist(), "FP A": fp_a.tolist(), "FP B": fp_b.tolist(),
        "lost TP": (tp_a - tp_b).clamp(min=0).tolist(), "new FP": (fp_b - fp_a).clamp(min=0).tolist(),
        "worse": worse.tolist(),
    }).sort_values(["worse", "position"], ascending=[False, True], kind="stable").reset_index(drop=True)
    map_a = float(aps[0][0][has].mean()) if bool(has.any()) else float("nan")
    map_b = float(aps[1][0][has].mean()) if bool(has.any()) else float("nan")
    return Comparison(map_a, map_b, per_class, table, table[table["worse"] > 0].reset_index(drop=True))
