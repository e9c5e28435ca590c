"""Class names for weight files that record none (Darknet files, the course's checkpoints), and
the matching of one class list to another (COCO -> VOC) that ``yolo.transfer`` uses."""

from __future__ import annotations

from yolo.config import VOC_CLASSES

# The 80 COCO classes in the order of Darknet's coco.names (COCO's category ids sorted), under
# COCO's own names.
COCO_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)
# VOC names that differ from COCO's beyond spaces and case (pottedplant = potted plant, ...).
# Darknet's coco.names uses the VOC spellings, so both spellings match either way.
CLASS_ALIASES: dict[str, str] = {
    "aeroplane": "airplane", "motorbike": "motorcycle", "sofa": "couch", "tvmonitor": "tv",
}


def _class_key(name: str) -> str:
    key = "".join(ch for ch in name.lower() if ch.isalnum())
    aliases = {"".join(ch for ch in k if ch.isalnum()): v.replace(" ", "") for k, v in CLASS_ALIASES.items()}
    return aliases.get(key, key)


def default_class_names(num_classes: int) -> list[str]:
    """Names for a file that records none: VOC's 20 (yolov3-voc.cfg, the course), COCO's 80
    (yolov3.cfg), else class0, class1, ..."""
    if num_classes == len(VOC_CLASSES):
        return list(VOC_CLASSES)
    if num_classes == len(COCO_CLASSES):
        return list(COCO_CLASSES)
    return [f"class{i}" for i in range(num_classes)]


def match_classes(source: list[str] | tuple[str, ...], target: list[str] | tuple[str, ...]) -> list[int | None]:
    """For each target class, the index of the same class in ``source`` (None when absent).

    Names match ignoring case, spaces and punctuation, and through ``CLASS_ALIASES`` (VOC's
    aeroplane, motorbike, sofa, tvmonitor are COCO's airplane, motorcycle, couch, tv).
    """
    index = {_class_key(n): i for i, n in enumerate(source)}
    return [index.get(_class_key(n)) for n in target]
