"""A synthetic dataset of long thin objects in the YOLO layout, for the anchor fit and for the
``--anchors auto`` training comparison (``bench.anchors_thin``, ``tests/test_anchors.py``).

Each image (``size`` x ``size``, dark noise) holds one or two bright bars of aspect 6:1 (class 0,
``horizontal``) or 1:6 (class 1, ``vertical``), long side 30-80% of the image, corners on whole
pixels; labels are ``class cx cy w h`` normalised by ``size``. Deterministic for a seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("horizontal", "vertical")


def write_thin_dataset(root: Path, n_train: int = 48, n_val: int = 16, size: int = 96, seed: int = 0) -> Path:
    """Write ``root/{data.yaml, images/{train,val}/NNN.png, labels/{train,val}/NNN.txt}``; returns ``root``."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("val", n_val)):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(n):
            image = rng.integers(0, 50, (size, size, 3)).astype(np.uint8)
            lines = []
            for _ in range(rng.integers(1, 3)):
                long = rng.uniform(0.3, 0.8) * size
                vertical = rng.random() < 0.5
                w, h = (long / 6, long) if vertical else (long, long / 6)
                x0, y0 = rng.uniform(0, size - w), rng.uniform(0, size - h)
                xa, ya, xb, yb = int(round(x0)), int(round(y0)), int(round(x0 + w)), int(round(y0 + h))
                image[ya:yb, xa:xb] = (230, 200, 40) if vertical else (40, 200, 230)
                lines.append(f"{int(vertical)} {(xa + xb) / 2 / size:.6f} {(ya + yb) / 2 / size:.6f} "
                             f"{(xb - xa) / size:.6f} {(yb - ya) / size:.6f}")
            Image.fromarray(image).save(root / "images" / split / f"{i:03d}.png")
            (root / "labels" / split / f"{i:03d}.txt").write_text("\n".join(lines) + "\n")
    (root / "data.yaml").write_text(f"path: .\ntrain: images/train\nval: images/val\nnames: [{', '.join(CLASSES)}]\n")
    return root
