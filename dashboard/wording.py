"""Words for counts on the pages: "1 box", "2 boxes", "0 detections"."""

from __future__ import annotations

IRREGULAR = {"box": "boxes", "match": "matches", "class": "classes"}


def count(n: int, singular: str, plural: str | None = None) -> str:
    """``n`` and the noun, singular only for exactly one: count(1, "box") == "1 box"."""
    word = singular if n == 1 else (plural or IRREGULAR.get(singular, singular + "s"))
    return f"{n} {word}"
