"""Label mistakes planted on purpose, and how many of them a label review finds.

    noisy, planted = inject_mistakes(truth, sizes, num_classes, seed=0)   # a copy; truth untouched
    result = review(detections, noisy, ...)                                # yolo.review
    recovery(result.boxes, planted)       # per kind: injected, top-k share, found share

Used by the tests and ``bench/review.py``. Rates are shares of the labels (``RATES``): dropped
boxes (their object becomes a *missing* label), a class swapped (*wrong_class*), a box shifted by
30-60 % of its size in a random direction (*loose*), a box repeated with a 0-5 % jitter
(*duplicate*) and a random box of a random class added (*spurious*).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from yolo.boxes import box_iou

RATES: dict[str, float] = {"missing": 0.10, "wrong_class": 0.05, "loose": 0.05, "duplicate": 0.03, "spurious": 0.03}


def inject_mistakes(truth: Sequence[dict], sizes: Sequence[tuple[int, int]], num_classes: int,
                    rates: dict[str, float] = RATES, seed: int = 0) -> tuple[list[dict], pd.DataFrame]:
    """Plant mistakes in a copy of per-image labels {"boxes" (G, 4) pixel xyxy, "labels" (G,)}.

    ``sizes``: (height, width) per image. Each label gets at most one mistake (dropped,
    swapped, shifted and duplicated labels are disjoint random sets); spurious boxes are added
    to random images. Returns the new per-image labels (numpy) and one row per planted mistake:
    kind, image, index (the label's position in the new annotation; -1 for a dropped one),
    partner (a duplicate's original, else -1), x1..y2 (the true box of a dropped one, else the
    planted box), label (the true class).
    """
    rng = np.random.default_rng(seed)
    boxes = [np.asarray(t["boxes"], np.float64).reshape(-1, 4) for t in truth]
    labels = [np.asarray(t["labels"], np.int64).reshape(-1) for t in truth]
    owner = np.concatenate([np.full(len(b), i) for i, b in enumerate(boxes)]) if boxes else np.zeros(0, int)
    local = np.concatenate([np.arange(len(b)) for b in boxes]) if boxes else np.zeros(0, int)
    total = len(owner)
    order = rng.permutation(total)
    counts = {k: int(round(rates.get(k, 0.0) * total)) for k in ("missing", "wrong_class", "loose", "duplicate")}
    chosen, at = {}, 0
    for k, c in counts.items():
        chosen[k] = order[at:at + c]
        at += c
    action = np.full(total, "", dtype=object)
    for k, idx in chosen.items():
        action[idx] = k
    new_labels = [l.copy() for l in labels]
    new_boxes = [b.copy() for b in boxes]
    for j in chosen["wrong_class"]:
        i, p = owner[j], local[j]
        new_labels[i][p] = (labels[i][p] + rng.integers(1, num_classes)) % num_classes
    for j in chosen["loose"]:
        i, p = owner[j], local[j]
        w, h = boxes[i][p, 2] - boxes[i][p, 0], boxes[i][p, 3] - boxes[i][p, 1]
        f, angle = rng.uniform(0.3, 0.6), rng.uniform(0, 2 * np.pi)
        shift = np.array([f * w * np.cos(angle), f * h * np.sin(angle)])
        new_boxes[i][p] = _clip(boxes[i][p] + np.tile(shift, 2), sizes[i])
    rows = []
    out = []
    for i in range(len(truth)):
        mine = np.flatnonzero(owner == i)
        keep = [p for p, j in zip(local[mine], mine) if action[j] != "missing"]
        b, l = new_boxes[i][keep], new_labels[i][keep]
        position = {p: n for n, p in enumerate(keep)}
        for p, j in zip(local[mine], mine):
            if action[j] == "missing":
                rows.append(("missing", i, -1, -1, *boxes[i][p], labels[i][p]))
            elif action[j] in ("wrong_class", "loose"):
                rows.append((action[j], i, position[p], -1, *new_boxes[i][p], labels[i][p]))
        extra_b, extra_l = [], []
        for p, j in zip(local[mine], mine):
            if action[j] == "duplicate":
                w, h = boxes[i][p, 2] - boxes[i][p, 0], boxes[i][p, 3] - boxes[i][p, 1]
                jitter = rng.uniform(-0.05, 0.05, 4) * np.array([w, h, w, h])
                extra_b.append(_clip(boxes[i][p] + jitter, sizes[i]))
                extra_l.append(labels[i][p])
                rows.append(("duplicate", i, len(b) + len(extra_b) - 1, position[p], *extra_b[-1], labels[i][p]))
        if extra_b:
            b, l = np.concatenate([b, np.array(extra_b)]), np.concatenate([l, np.array(extra_l)])
        out.append({"boxes": b.astype(np.float32).reshape(-1, 4), "labels": l.astype(np.int64)})
    for _ in range(int(round(rates.get("spurious", 0.0) * total))):
        i = int(rng.integers(len(truth)))
        h, w = sizes[i]
        bw, bh = rng.uniform(0.1, 0.4) * w, rng.uniform(0.1, 0.4) * h
        x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
        box, cls = np.array([x, y, x + bw, y + bh]), int(rng.integers(num_classes))
        out[i]["boxes"] = np.concatenate([out[i]["boxes"], box[None].astype(np.float32)])
        out[i]["labels"] = np.concatenate([out[i]["labels"], [cls]]).astype(np.int64)
        rows.append(("spurious", i, len(out[i]["labels"]) - 1, -1, *box, cls))
    planted = pd.DataFrame(rows, columns=["kind", "image", "index", "partner", "x1", "y1", "x2", "y2", "label"])
    return out, planted


def _clip(box: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    out = np.clip(box, 0, [w, h, w, h])
    out[2:] = np.maximum(out[2:], out[:2] + 1)  # never empty
    return out


def hits(boxes: pd.DataFrame, planted: pd.DataFrame, kind: str, match_iou: float = 0.5) -> np.ndarray:
    """For each row of ``boxes`` (a ``Review.boxes`` frame), the planted mistake of ``kind`` it
    points at (row number in ``planted``), or -1. A missing row hits a dropped box it overlaps at
    least ``match_iou``; a label row hits the planted label (either label of a duplicate pair)."""
    out = np.full(len(boxes), -1)
    mine = planted[planted["kind"] == kind]
    if kind == "missing":
        cand = np.flatnonzero(boxes["gt_row"].to_numpy() < 0)
        suggested = boxes[["sx1", "sy1", "sx2", "sy2"]].to_numpy(np.float32)
        for image, group in mine.groupby("image"):  # per image with a dropped box (few)
            rows = cand[boxes["image"].to_numpy()[cand] == image]
            if len(rows):
                iou = box_iou(torch.as_tensor(suggested[rows]),
                              torch.as_tensor(group[["x1", "y1", "x2", "y2"]].to_numpy(np.float32))).numpy()
                best = iou.argmax(1)
                ok = iou.max(1) >= match_iou
                out[rows[ok]] = group.index.to_numpy()[best[ok]]
        return out
    key = {(int(i), int(p)): r for r, i, p in zip(mine.index, mine["image"], mine["index"])}
    if kind == "duplicate":
        key.update({(int(i), int(p)): r for r, i, p in zip(mine.index, mine["image"], mine["partner"])})
    for n, (i, p) in enumerate(zip(boxes["image"].to_numpy(), boxes["gt_in_image"].to_numpy())):
        out[n] = key.get((int(i), int(p)), -1)
    return out


def recovery(boxes: pd.DataFrame, planted: pd.DataFrame, flag: float = 0.5) -> pd.DataFrame:
    """Per kind: injected (k), top_k (share of the k rows with the highest score of that kind
    that point at a planted mistake of that kind, each mistake counted once) and found (share of
    planted mistakes with a row whose score of that kind is at least ``flag``)."""
    rows = []
    for kind in ("missing", "wrong_class", "loose", "spurious", "duplicate"):
        k = int((planted["kind"] == kind).sum())
        score = boxes[f"s_{kind}"].to_numpy()
        hit = hits(boxes, planted, kind)
        top = np.argsort(-score, kind="stable")[:k]
        top = top[score[top] > 0]
        in_top = len(set(hit[top][hit[top] >= 0].tolist()))
        found = len(set(hit[(score >= flag) & (hit >= 0)].tolist()))
        rows.append({"kind": kind, "injected": k, "top_k": in_top / k if k else float("nan"),
                     "found": found / k if k else float("nan")})
    return pd.DataFrame(rows)
