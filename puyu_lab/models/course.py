"""The shipped course model: where it lies in the package, and its manifest.

The course model is the quick architecture trained past the induction threshold by the project's
own stages (``puyu-lab course build``, :mod:`puyu_lab.course`) and shipped in the package, the way
the camps hand learners a pretrained InternLM2-chat-1.8B. Labs load ``base`` or ``assistant``
from here, offline, beside the learner's own model.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import PuyuError

COURSE_DIR = Path(__file__).resolve().parent.parent / "course_model"
MANIFEST = "manifest.json"
PARTS = ("base", "assistant")
# the folder of each part: its name is what the deploy and agent stages call a brought model by
# (gguf/course-assistant, …), so it says whose model it is
FOLDERS = {"base": "course-base", "assistant": "course-assistant"}
# what the shipped base must show on models.probes.copy_probe (issue #37): a gain of ≥ 4 nats/token, and ≥ 80 % of
# the 32-token random runs copied exactly by greedy decoding
MIN_COPY_GAIN, MIN_COPIED = 4.0, 0.8


class CourseModelMissing(PuyuError, FileNotFoundError):
    """The course model is not built here; the message says how to build it."""


def shipped_manifest(root: Path | None = None) -> dict:
    f = Path(root or COURSE_DIR) / MANIFEST
    if not f.is_file():
        raise CourseModelMissing(f"no course model in {f.parent}: build it with `puyu-lab course build`, then "
                                 "`puyu-lab course ship`",
                                 zh=f"{f.parent} 中没有课程模型：请先用 `puyu-lab course build` 构建，再运行 "
                                    "`puyu-lab course ship`")
    return json.loads(f.read_text(encoding="utf-8"))


def course_path(part: str = "assistant", root: Path | None = None) -> Path:
    """The folder of the shipped ``base`` or ``assistant`` (a transformers model with its tokenizer)."""
    if part not in PARTS:
        raise ValueError(f"the course model has parts {', '.join(PARTS)}, not {part!r}")
    shipped_manifest(root)
    return Path(root or COURSE_DIR) / FOLDERS[part]


def verify(root: Path | None = None) -> list[str]:
    """What differs between the shipped files and their manifest (missing, extra, size or sha256);
    ``[]`` when they match."""
    from ..workspace import sha256_file

    root = Path(root or COURSE_DIR)
    files = shipped_manifest(root)["files"]
    problems = []
    for rel, want in sorted(files.items()):
        f = root / rel
        if not f.is_file():
            problems.append(f"{rel}: missing")
            continue
        if f.stat().st_size != want["bytes"]:
            problems.append(f"{rel}: {f.stat().st_size} bytes, the manifest says {want['bytes']}")
            continue
        if sha256_file(f) != want["sha256"]:
            problems.append(f"{rel}: sha256 differs from the manifest's")
    for f in sorted(root.rglob("*")):
        rel = str(f.relative_to(root))
        if f.is_file() and rel != MANIFEST and rel not in files and "__pycache__" not in rel:
            problems.append(f"{rel}: not in the manifest")
    return problems


def load(part: str = "assistant", root: Path | None = None, **kw):
    """The shipped ``base`` or ``assistant`` as a model-layer :class:`~puyu_lab.models.hf.HFModel`, in fp32
    (shipped in bf16 to stay small; the CPU paths of the labs compute in their own precision)."""
    from .hf import HFModel

    return HFModel.load(course_path(part, root), name=f"course-{part}", **kw)


HELDOUT = "heldout.json"  # the course fine-tune's held-out tasks, phrased in forms it never trained on


def heldout_tasks(kind: str, n: int | None = None, *, seed: int = 0, root: Path | None = None) -> list[dict]:
    """The course assistant's held-out ``arithmetic`` / ``date`` / ``notool`` tasks (never in its SFT), each
    with its ``question``; ``n`` of them drawn with ``seed`` (all when ``None``)."""
    import random

    shipped_manifest(root)
    tasks = json.loads((Path(root or COURSE_DIR) / HELDOUT).read_text(encoding="utf-8"))
    if kind not in tasks:
        raise ValueError(f"the course model has held-out tasks of kinds {', '.join(tasks)}, not {kind!r}")
    rows = tasks[kind]
    return random.Random(seed).sample(rows, n) if n is not None and n < len(rows) else rows
