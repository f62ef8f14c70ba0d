"""The eval stage in one call: the built-in tasks over the base and SFT models (and the SFT model's
GGUF levels, when the deploy lab has run) → ``eval/chain``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import InputError
from ..events import Event, StopFlag
from ..i18n import tr
from ..workspace import Artifact, Workspace
from .config import EvalConfig

GGUF_OF = "model/sft"  # whose GGUF levels are evaluated
COURSE = "course-assistant"  # the shipped course assistant's name on the leaderboard


@dataclass
class EvalResult:
    run: object  # the runner.EvalRun (metrics, samples, summary)
    artifact: Artifact  # eval/chain
    tasks: list


def model_names(ws: Workspace, cfg: EvalConfig) -> list[str]:
    """``cfg.models``, then those of ``cfg.optional_models`` the workspace has and that were made from
    its current artifacts (a ``model/dpo`` trained before ``model/sft`` or ``pref/data`` was rebuilt
    would be scored on pairs it may have trained on: it is left out, with a warning)."""
    import warnings

    out = list(cfg.models)
    for m in cfg.optional_models:
        if m in cfg.models or not ws.exists(m):
            continue
        art = ws.get(m)
        if ws.is_stale(art):
            olds = ", ".join(p["name"] for p in art.parents if not ws.exists(p["name"]) or
                             ws.get(p["name"]).id != p.get("id"))
            lab = f"labs/{_lab_of(m)}"
            warnings.warn(tr(f"{m} 是用旧版的 {olds} 生成的：这次评测不包含它；重新运行生成它的实验（{lab}）即可把它加进来",
                             f"{m} was made from an earlier {olds}: it is left out of the evaluation; rerun the "
                             f"lab that makes it ({lab}) to include it"), stacklevel=2)
            continue
        out.append(m)
    return out


def _lab_of(name: str) -> str:
    from ..stages import stage_for_artifact

    st = stage_for_artifact(name)
    return st.lab if st else "?"


def parents_for(ws: Workspace, cfg: EvalConfig) -> list[Artifact]:
    """What an eval run is made from: every evaluated model, and ``pref/data`` when its tasks are in."""
    from ..artifacts import PREF_DATA

    names = model_names(ws, cfg) + ([PREF_DATA] if ws.exists(PREF_DATA) else [])
    return [ws.get(m) for m in names]


def models_for(ws: Workspace, cfg: EvalConfig) -> dict:
    """The scorers ``cfg`` names: each model artifact (by its short name), then ``sft-<level>`` GGUF files."""
    from ..artifacts import gguf_name, ladder_files, short
    from ..models import GGUFModel, HFModel

    ws = ws.for_stage("eval")  # reads only what stages.py declares for the stage
    names = model_names(ws, cfg)
    scorers = {short(m): HFModel.load(ws.get(m).path, short(m), batch_size=cfg.batch_size) for m in names}
    if cfg.course and "model/rl" in names:
        from ..models import course

        scorers[COURSE] = course.load("assistant", batch_size=cfg.batch_size)
    if cfg.levels and ws.exists(gguf_name(GGUF_OF)):
        files = ladder_files(ws, GGUF_OF)
        ref = scorers.get(short(GGUF_OF))
        for lv in cfg.levels:
            if lv not in files:
                raise InputError(f"{gguf_name(GGUF_OF)} has no level {lv}; it has {', '.join(files)}",
                                 zh=f"{gguf_name(GGUF_OF)} 中没有 {lv} 这一量化档位；现有：{', '.join(files)}")
            name = f"{short(GGUF_OF)}-{lv}"
            scorers[name] = GGUFModel(files[lv], name, **({"max_length": ref.max_length} if ref else {}))
    if cfg.cache:
        for name, s in scorers.items():
            s.use_cache(ws.root / "cache" / "eval" / f"{name}.json")
    return scorers


def run(ws: Workspace, cfg: EvalConfig | None = None, *, on_event: Callable[[Event], None] | None = None,
        stop: StopFlag | None = None) -> EvalResult:
    """``builtin_tasks`` sized by ``cfg`` (default: the profile's), ``evaluate`` every model, ``save``."""
    from .builtin import builtin_tasks
    from .runner import evaluate, save

    ws = ws.for_stage("eval")  # reads only what stages.py declares for the stage
    cfg = cfg or EvalConfig.for_profile()
    tasks = builtin_tasks(ws, n=cfg.n, ppl_docs=cfg.ppl_docs, seed=cfg.seed, sentiment_n=cfg.sentiment_n)
    scorers = models_for(ws, cfg)
    try:
        result = evaluate(scorers, tasks, on_event=on_event, stop=stop, progress_bar=cfg.progress_bar)
    finally:
        for s in scorers.values():
            s.close()
    art = save(ws, result, cfg.name, parents=parents_for(ws, cfg))
    return EvalResult(result, art, tasks)
