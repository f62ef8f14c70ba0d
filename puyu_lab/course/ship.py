"""Ship the built course model into the package: base, assistant and tokenizer, bf16, with sha256s.

``puyu_lab/course_model/`` holds ``course-base/`` and ``course-assistant/`` (transformers folders: bf16
safetensors, config, tokenizer files) and ``manifest.json``: every file's size and sha256, and the
build's record (tokens seen, the B·C schedule, the probe curves, the wall time and machine of every
session). Labs load it offline through :mod:`puyu_lab.models.course`; a test checks the files
against the manifest.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

from ..models.course import COURSE_DIR, FOLDERS, HELDOUT, MANIFEST, shipped_manifest  # noqa: F401 (re-exported for the CLI)
from ..workspace import Workspace, sha256_file

PARTS = {"base": "model/course-b", "assistant": "model/sft"}
MAX_BYTES = 25 * 1024 * 1024


def _record(ws: Workspace) -> dict:
    rec: dict = {"phases": [], "sft": None}
    before = 0  # tokens of the earlier phases: each curve point also gets the build's running total
    from .build import phase_names
    from .config import CourseConfig

    for name in [phase_names(p)[1] for p in CourseConfig().phases]:
        if not ws.exists(name):
            continue
        art = ws.get(name)
        phase = json.loads((art.path / "course_phase.json").read_text(encoding="utf-8"))
        curve = json.loads((art.path / "probe_curve.json").read_text(encoding="utf-8"))
        m = art.metrics
        curve = [{**q, "tokens_total": before + q["tokens"]} for q in curve]
        # the rate over every session of the phase (the model's own tokens_per_s is its last session's)
        rate = round(phase["tokens_seen"] / phase["seconds"], 1) if phase.get("seconds") else None
        rec["phases"].append({**phase, "artifact": art.id, "steps": m.get("steps"), "eval_loss": m.get("eval_loss"),
                              "copy_gain": m.get("copy_gain"), "tokens_per_s": rate, "probe_curve": curve})
        before += phase["tokens_seen"]
    if ws.exists("model/sft"):
        rec["sft"] = _sft_record(ws)
    rec["tokens_seen"] = sum(p.get("tokens_seen") or 0 for p in rec["phases"])
    return rec


def _sft_record(ws: Workspace) -> dict:
    """The fine-tune's figures, recipe and data: its steps and seconds, the rate and length it trained at, the
    mixture's settings and the reading conversations per source; the machine where the build recorded it."""
    from .build import SFT_SESSION

    art = ws.get("model/sft")
    m = art.metrics
    rec = {k: m[k] for k in ("steps", "seconds", "eval_loss", "tokens_per_s", "precision", "precision_reason",
                             "conversations", "truncated", "dropped_untrained") if k in m}
    cfg = art.params.get("config") or {}
    rec["config"] = {k: cfg.get(k) for k in ("learning_rate", "epochs", "max_length", "method")}
    if ws.exists("sft/data"):
        data = ws.get("sft/data").params
        rec["data"] = data.get("data")
        custom = data.get("custom_data")
        if custom and Path(custom).is_file():
            lines = Path(custom).read_text(encoding="utf-8").splitlines()
            sources = Counter(json.loads(x).get("source", "?") for x in lines if x.strip())
            rec["reading"] = {"file": Path(custom).name, "sources": dict(sources)}
    session = ws.root / "runs" / SFT_SESSION
    if session.is_file():
        s = json.loads(session.read_text(encoding="utf-8"))
        if s.get("artifact") == art.id:  # recorded for this very fine-tune
            rec.update(machine=s.get("machine"), wall_seconds=s.get("seconds"))
    return rec


def heldout(ws: Workspace) -> dict:
    """The course fine-tune's held-out tasks (sft/data's held-out parts), the tool tasks phrased in the forms no
    fine-tune conversation uses (round robin, so each form is asked)."""
    from ..artifacts import load_sft_data
    from ..contracts.tasks import ARITHMETIC_UNSEEN_FORMS, DATE_UNSEEN_FORMS

    arith = [{**t, "question": ARITHMETIC_UNSEEN_FORMS[i % len(ARITHMETIC_UNSEEN_FORMS)].format(e=t["expression"])}
             for i, t in enumerate(load_sft_data(ws, "arithmetic_heldout"))]
    dates = [{**t, "question": DATE_UNSEEN_FORMS[i % len(DATE_UNSEEN_FORMS)].format(date=t["date"], days=t["days"])}
             for i, t in enumerate(load_sft_data(ws, "date_heldout"))]
    return {"arithmetic": arith, "date": dates, "notool": load_sft_data(ws, "notool_heldout")}


def ship(ws: Workspace, to: Path | None = None) -> Path:
    """Copy the parts into ``to`` (default: the package's ``course_model/``), replacing what was there
    only once every file is written."""
    import torch
    from transformers import AutoModelForCausalLM

    from ..models.tokenizer import load_tokenizer, save_tokenizer

    dest = Path(to or COURSE_DIR)
    tmp = Path(tempfile.mkdtemp(prefix=".course-ship-", dir=dest.parent))
    try:
        files = {}
        for part, name in PARTS.items():
            art = ws.get(name)
            model = AutoModelForCausalLM.from_pretrained(str(art.path), dtype=torch.bfloat16)
            model.save_pretrained(str(tmp / FOLDERS[part]))
            save_tokenizer(load_tokenizer(art.path), tmp / FOLDERS[part], art.path / "tokenizer.model")
        (tmp / HELDOUT).write_text(json.dumps(heldout(ws), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        for f in sorted(tmp.rglob("*")):
            # mkdtemp's folder and safetensors' files are private (0700 / 0600): the package's files are readable by all
            f.chmod(0o755 if f.is_dir() else 0o644)
            if f.is_file():
                files[str(f.relative_to(tmp))] = {"bytes": f.stat().st_size, "sha256": sha256_file(f)}
        total = sum(v["bytes"] for v in files.values())
        if total > MAX_BYTES:
            raise ValueError(f"the course model is {total / 2**20:.1f} MB, over the {MAX_BYTES / 2**20:.0f} MB the "
                             "repository allows: ship a smaller preset")
        manifest = {"parts": PARTS, "files": files, "bytes": total, "build": _record(ws)}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        tmp.chmod(0o755)
        if dest.exists():
            old = dest.with_name(dest.name + ".old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old)
        else:
            os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
