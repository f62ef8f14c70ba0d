"""The shipped course model: where it lies in the package, and its manifest.

The course model is the quick architecture trained past the induction threshold by the project's
own stages (``puyu-lab course build``, :mod:`puyu_lab.course`) and shipped in the package, the way
the camps hand learners a pretrained InternLM2-chat-1.8B. Labs load ``base`` or ``assistant``
from here, offline, beside the learner's own model.
"""
from __future__ import annotations

import json
from pathlib import Path

COURSE_DIR = Path(__file__).resolve().parent.parent / "course_model"
MANIFEST = "manifest.json"
PARTS = ("base", "assistant")


class CourseModelMissing(FileNotFoundError):
    pass


def shipped_manifest(root: Path | None = None) -> dict:
    f = Path(root or COURSE_DIR) / MANIFEST
    if not f.is_file():
        raise CourseModelMissing(f"no course model in {f.parent}: build it with `puyu-lab course build`, then "
                                 "`puyu-lab course ship`")
    return json.loads(f.read_text(encoding="utf-8"))


def course_path(part: str = "assistant", root: Path | None = None) -> Path:
    """The folder of the shipped ``base`` or ``assistant`` (a transformers model with its tokenizer)."""
    if part not in PARTS:
        raise ValueError(f"the course model has parts {', '.join(PARTS)}, not {part!r}")
    shipped_manifest(root)
    return Path(root or COURSE_DIR) / part
