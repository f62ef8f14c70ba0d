"""Carry a course build from one machine to the next: ``export`` its finished phases as a seed folder, ``import`` it.

The build takes longer than a working session on a 2-core CPU, and a session's machine — the build's workspace, its
checkpoints — does not outlive the session. A seed is what the next phase needs, small enough to commit: the
tokenizer, the weights of the latest finished phase, and every finished phase's record (its manifest's params and
metrics, ``course_phase.json``, ``probe_curve.json``, the probe and session logs). The corpora are not in it (the
data stage remakes them from the shipped sources) nor are the Trainer checkpoints (a phase resumes only on the
machine that ran it; a seed holds finished phases only).

Imported into a fresh build workspace, the tokenizer and the latest phase's model become artifacts again, their
params naming the seed (the original artifact id, the build's sessions and machines stay in the records); their
only parent is the tokenizer, so the remade corpora do not make them stale. The earlier phases come back as
records without weights (kind ``course-record``): enough for ``build`` to see them finished and for ``ship`` to
write the whole build's history. Every file is checked against the seed's sha256s first.

Hand-written: a workspace is this project's own format (nothing outside it reads one).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from ..errors import InputError
from ..workspace import MANIFEST, Workspace, sha256_file
from .build import TOKENIZER, phase_done, phase_names
from .config import CourseConfig

SEED_FILE = "seed.json"
RECORD_KIND = "course-record"  # a finished phase without its weights (only the seed's latest phase keeps them)
RECORD_FILES = ("course_phase.json", "probe_curve.json")


def finished_phases(ws: Workspace, cfg: CourseConfig) -> list:
    """The build's phases, in order, up to the first one not finished."""
    done = []
    for p in cfg.phases:
        if not phase_done(ws, p):
            break
        done.append(p)
    return done


def _files(root: Path) -> dict[str, str]:
    return {f.relative_to(root).as_posix(): sha256_file(f) for f in sorted(root.rglob("*"))
            if f.is_file() and f.name != MANIFEST}


def export(ws: Workspace, out: str | Path, cfg: CourseConfig | None = None) -> dict:
    """Write the seed of the build in ``ws`` to ``out`` (replaced whole once complete); returns its ``seed.json``."""
    cfg = cfg or CourseConfig()
    done = finished_phases(ws, cfg)
    if not done:
        raise InputError(f"{ws.root}: no phase of the course build has finished yet (phase {cfg.phases[0].name!r} "
                         "is the first): run `puyu-lab course build` until one has",
                         zh=f"{ws.root}：课程模型的构建还没有完成任何一个阶段（第一个是 {cfg.phases[0].name!r}）："
                            "请先运行 `puyu-lab course build`，直到至少一个阶段完成")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        shutil.copytree(ws.get(TOKENIZER).path, tmp / "tokenizer", ignore=shutil.ignore_patterns(MANIFEST))
        phases = []
        for p in done:
            _, model, run = phase_names(p)
            art = ws.get(model)
            if art.kind == RECORD_KIND and p is done[-1]:
                raise InputError(f"{model} in {ws.root} holds no weights (it came from a seed as a record): export "
                                 "after the next phase has finished",
                                 zh=f"{ws.root} 中的 {model} 没有权重（它是从种子导入的记录）：请等下一个阶段完成后再导出")
            rec = tmp / "records" / p.name
            rec.mkdir(parents=True)
            for f in RECORD_FILES:
                shutil.copy2(art.path / f, rec / f)
            for suffix in (".probe.jsonl", ".sessions.json"):
                src = ws.root / "runs" / f"{run}{suffix}"
                if src.is_file():
                    shutil.copy2(src, rec / f"{run}{suffix}")
            phases.append({"phase": p.name, "artifact": model, "id": art.id,
                           "seed_of": art.params.get("seed", {}).get("id", art.id),
                           "kind": art.kind, "stage": art.stage, "params": art.params, "metrics": art.metrics})
        last = ws.get(phase_names(done[-1])[1])
        shutil.copytree(last.path, tmp / "model", ignore=shutil.ignore_patterns(MANIFEST))
        tok = ws.get(TOKENIZER)
        seed = {"made": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "weights": done[-1].name,
                "next": cfg.phases[len(done)].name if len(done) < len(cfg.phases) else "sft",
                "tokenizer": {"id": tok.id, "kind": tok.kind, "stage": tok.stage, "params": tok.params,
                              "metrics": tok.metrics},
                "phases": phases, "files": _files(tmp)}
        (tmp / SEED_FILE).write_text(json.dumps(seed, indent=1, ensure_ascii=False, default=str) + "\n",
                                     encoding="utf-8")
        old = out.with_name(out.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return seed


def read_seed(seed_dir: str | Path) -> dict:
    """The seed's ``seed.json``, every file checked against its sha256 (one error naming each file that differs)."""
    seed_dir = Path(seed_dir)
    f = seed_dir / SEED_FILE
    try:
        seed = json.loads(f.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{f} not found: a seed folder is written by `puyu-lab course seed`",
                         zh=f"找不到 {f}：种子目录由 `puyu-lab course seed` 写出") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{f}: not JSON ({exc}); restore it with `git checkout -- {seed_dir}`",
                         zh=f"{f}：不是合法的 JSON（{exc}）；请用 `git checkout -- {seed_dir}` 恢复") from None
    bad = [rel for rel, digest in seed["files"].items()
           if not (seed_dir / rel).is_file() or sha256_file(seed_dir / rel) != digest]
    if bad:
        raise InputError(f"{seed_dir}: {len(bad)} file(s) missing or changed since the seed was written "
                         f"({', '.join(bad[:5])}): restore them with `git checkout -- {seed_dir}`",
                         zh=f"{seed_dir}：有 {len(bad)} 个文件缺失或在种子写出后被改动（{', '.join(bad[:5])}）："
                            f"请用 `git checkout -- {seed_dir}` 恢复")
    return seed


def import_seed(ws: Workspace, seed_dir: str | Path) -> dict | None:
    """Write the seed into a build workspace that has no tokenizer yet; returns the seed, or None when ``ws``
    already has its own build (nothing is imported over it)."""
    if ws.exists(TOKENIZER):
        return None
    seed_dir = Path(seed_dir)
    seed = read_seed(seed_dir)
    origin = {"folder": str(seed_dir), "made": seed["made"]}
    t = seed["tokenizer"]
    with ws.write(TOKENIZER, kind=t["kind"], stage=t["stage"],
                  params={**t["params"], "seed": {**origin, "id": t["id"]}}) as w:
        shutil.copytree(seed_dir / "tokenizer", w.path, dirs_exist_ok=True)
        w.metrics.update(t["metrics"])
    runs = ws.root / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    for ph in seed["phases"]:
        weights = ph["phase"] == seed["weights"]
        params = {**ph["params"], "seed": {**origin, "id": ph["seed_of"]}}
        with ws.write(ph["artifact"], kind=ph["kind"] if weights else RECORD_KIND, stage=ph["stage"],
                      params=params, parents=[TOKENIZER]) as w:
            if weights:
                shutil.copytree(seed_dir / "model", w.path, dirs_exist_ok=True)
            for f in RECORD_FILES:
                shutil.copy2(seed_dir / "records" / ph["phase"] / f, w.path / f)
            w.metrics.update(ph["metrics"])
        for f in (seed_dir / "records" / ph["phase"]).glob("course-*"):
            shutil.copy2(f, runs / f.name)
    return seed
