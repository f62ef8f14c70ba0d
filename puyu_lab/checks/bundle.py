"""``puyu-lab submit``: the evidence bundle a learner uploads instead of screenshots.

One zip file::

    bundle.json                     format, learner, environment, the report card, and per artifact:
                                    its manifest, whether it is stale, and every file's sha256 / size
                                    (with ``included`` saying whether the file itself is in the zip)
    artifacts/<name>/manifest.json  each artifact's manifest as the stage wrote it
    artifacts/<name>/<file>         the small files (≤ ``max_file_mb``, 4 MB by default) and, with ``model``, the whole model
                                    the teacher's hidden probes run against

The stage wrote each file's sha256 into its manifest when it made the artifact
(:func:`puyu_lab.workspace.file_digests`); ``puyu-lab grade`` checks the bundle against both.
Written to a temporary name and renamed, so a bundle is complete or absent.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
import zipfile
from pathlib import Path
from typing import Callable

from ..i18n import tr
from ..workspace import MANIFEST, Workspace, sha256_file

FORMAT = "puyu-lab-bundle/1"
PROBE_MODEL = "model/sft"  # the model the teacher's probes ask by default
# bundled whole (past the size cap) for the probes: the learner's assistant, and the GRPO-trained course assistant a
# "tool" probe group asks (checks.probes.TOOL_MODEL)
PROBE_MODELS = (PROBE_MODEL, "model/rl")


def environment() -> dict:
    """Versions, CPU and GPU of the learner's machine (what a teacher needs to read the figures)."""
    import importlib.metadata as md

    env: dict = {"python": platform.python_version(), "platform": platform.platform(),
                 "machine": platform.machine(), "cores": os.cpu_count()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                env["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    pkgs = {}
    for d in ("puyu-lab", "torch", "transformers", "peft", "trl", "datasets", "llama_cpp_python", "gguf"):
        try:
            pkgs[d] = md.version(d)
        except md.PackageNotFoundError:
            pass
    env["packages"] = pkgs
    try:
        import torch

        env["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        env["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # torch missing or broken: the bundle still goes
        pass
    return env


def submit(ws: Workspace | None = None, out: str | os.PathLike | None = None, *, learner: str = "",
           model: str | tuple[str, ...] | None = PROBE_MODELS, max_file_mb: float = 4.0,
           on_progress: Callable[[str], None] | None = None) -> Path:
    """Write the bundle of ``ws`` (its report card run now) and return its path; ``model``: the model artifact(s)
    bundled whole for the hidden probes (``None``: none)."""
    from . import run

    ws = ws or Workspace()
    say = on_progress or (lambda s: None)
    learner = learner or os.environ.get("PUYU_LAB_LEARNER") or os.environ.get("USER") or "learner"
    arts = ws.list()
    if not arts:
        from ..errors import InputError

        raise InputError(f"workspace {ws.root} has no artifacts: run the labs (or `make chain`) before submitting",
                         zh=f"工作区 {ws.root} 中还没有任何产物：请先运行各个实验（或 `make chain`）再提交")
    say(tr(f"自检：正在检查 {ws.root}", f"checks: running on {ws.root}"))
    card = run(ws)
    now = dt.datetime.now()
    stamp = now.strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in learner)[:40] or "learner"
    dest = Path(out) if out else ws.root / "report" / f"submission-{safe}-{stamp}.zip"
    if dest.is_dir():
        dest = dest / f"submission-{safe}-{stamp}.zip"
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.partial")
    models = (model,) if isinstance(model, str) else tuple(model or ())
    probed = [m for m in models if ws.exists(m)]
    info: dict = {"format": FORMAT, "learner": learner, "created": now.isoformat(timespec="seconds"),
                  "max_file_bytes": int(max_file_mb * 2 ** 20), "environment": environment(),
                  "report": {**card.as_dict(), "workspace": ws.root.name},
                  "probe_model": probed[0] if probed else None, "probe_models": probed, "artifacts": {}}
    cap = max_file_mb * 2 ** 20
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as z:
            for art in arts:
                files = {}
                whole = art.name in probed
                for p in sorted(art.path.rglob("*")):
                    if not p.is_file():
                        continue
                    rel = p.relative_to(art.path).as_posix()
                    if rel == MANIFEST:
                        continue
                    size = p.stat().st_size
                    included = whole or size <= cap
                    files[rel] = {"sha256": sha256_file(p), "bytes": size, "included": included}
                    if included:
                        z.write(p, f"artifacts/{art.name}/{rel}")
                z.write(art.path / MANIFEST, f"artifacts/{art.name}/{MANIFEST}")
                info["artifacts"][art.name] = {"manifest": art.manifest, "stale": ws.is_stale(art), "files": files}
                n_in = sum(f["included"] for f in files.values())
                say(tr(f"  {art.name}：打包了 {n_in}/{len(files)} 个文件", f"  {art.name}: {n_in}/{len(files)} file(s) included"))
            z.writestr("bundle.json", json.dumps(info, ensure_ascii=False, indent=1, default=str))
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    mb = dest.stat().st_size / 2 ** 20
    say(tr(f"提交包：{dest}（{mb:.1f} MB），自检通过 {card.passed}/{card.total} 项",
           f"bundle: {dest} ({mb:.1f} MB), checks {card.passed}/{card.total}"))
    return dest
