"""A model's weights and what it needs to run, from any file format this project reads.

    state.py      the bottom: ModelState, the checks every state passes, CheckpointError /
                  CheckpointWarning, safe reading of a PyTorch file, ModelState -> YOLOv3
    convs.py      YOLOv3's 75 convolutions in Darknet's cfg order (shared by the Darknet and course formats)
    classes.py    names for files that record none (COCO's 80, VOC's 20), class matching (COCO -> VOC)
    lightning.py  this project's files: Lightning training checkpoints and ``save_weights`` exports
    course.py     the course's ``checkpoint.pth.tar`` and its Lightning ports, matched by structure
    darknet.py    Darknet ``.weights`` (read and write)
    __init__.py   ``read_checkpoint``: recognises the format and dispatches (this file)

Imports go one way: state/convs/classes <- the formats <- this file. A format is a module with
``read(file: WeightsFile, prefer_ema: bool) -> ModelState | None`` (None: not this format); a new
format is one new module and one entry in ``FORMATS``.
"""

from __future__ import annotations

from pathlib import Path

from yolo.weights import course, darknet, lightning
from yolo.weights.lightning import optimiser_group_sizes, read_training_checkpoint, save_weights, saved_image_size
from yolo.weights.state import (
    MAX_WIDTH, CheckpointError, CheckpointWarning, ModelState, WeightsFile, build_model, load_into,
)

# Tried in order; the first that recognises the file reads it. Darknet first: it is told by its
# header, before any torch.load. The course's layout before this project's: its Lightning ports
# also hold a "state_dict".
FORMATS = (darknet.read, course.read, lightning.read)

__all__ = [
    "FORMATS", "MAX_WIDTH", "CheckpointError", "CheckpointWarning", "ModelState", "WeightsFile", "build_model",
    "load_into", "optimiser_group_sizes", "read_checkpoint", "read_training_checkpoint", "save_weights",
    "saved_image_size",
]


def read_checkpoint(path: str | Path, prefer_ema: bool = True) -> ModelState:
    """Read any weight file this project knows, safely, check it, and pick the network weights
    (EMA when present and preferred): a Lightning checkpoint or export of this project, a course
    checkpoint, a Darknet ``.weights`` file.

    Checked before any model is built: the file is a dict of tensors and plain values (or a
    Darknet file of a size that fits); the class count and width come from the tensor shapes,
    every tensor has the shape YOLOv3 of that count and width has (compared on the meta device,
    which allocates nothing), and hyper-parameters that are malformed or disagree with the
    weights are refused, all with ``CheckpointError``. NaN or Inf weights give a
    ``CheckpointWarning`` and are listed in ``ModelState.nonfinite``.
    """
    file = WeightsFile(path)
    for read in FORMATS:
        state = read(file, prefer_ema)
        if state is not None:
            return state
    raise CheckpointError(
        f"{file.path}: expected a 'state_dict' (Lightning checkpoint) or 'model' (exported weights) "
        f"entry, found keys {sorted(map(str, file.raw()))[:8]}"
    )
