"""``puyu-lab course build``: the course model, made by the project's own stages, resumable.

The learner's quick model (0.8 M tokens) cannot copy from its context: induction heads form only
after N ≈ 10^5.7·√(B·C) tokens. The course model is the same architecture trained past that point
by the same pretrain and fine-tune stages, in a workspace of its own (``--home``), step by step:

1. ``corpus/clean`` — the data stage on every document the shipped sources hold (profile ``full``);
2. ``tokenizer/spm`` — the pretrain stage's tokenizer at the quick preset's vocabulary;
3. per phase, ``corpus/course-<p>`` (natural documents + copy-rich ones, :mod:`.copyrich`) and
   ``model/course-<p>`` (the pretrain stage, ``init_from`` the previous phase), the copy probe
   measured along the way (``runs/course-<p>/probe.jsonl``, then the manifest);
4. ``sft/data`` + ``model/sft`` — the fine-tune stage on the course base.

Every step is skipped when its artifact exists; a phase stopped part-way (Ctrl-C, a session's end)
resumes from its last Trainer checkpoint on the same curve. ``ship`` then copies the base, the
assistant and the tokenizer into the package (bf16, with sha256s) — see :mod:`.ship`.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import random
import time
from pathlib import Path
from typing import Callable

from ..errors import InputError
from ..events import Emitter, Event, StopFlag
from ..workspace import Workspace
from .config import CourseConfig, PhaseConfig
from ..models.probes import induction_threshold, probe_margin
from .copyrich import copy_rich_documents

TOKENIZER = "tokenizer/spm"
READING_VERSION = 2  # the rule of .reading (2: sources by share, news beside reviews)
SFT_SESSION = "course-sft.session.json"  # under runs/: the fine-tune's machine and wall time
OTHER_LENGTHS = (24, 40)  # the copy probe's run length is 32; these lengths catch a head that looks back 32 positions


def phase_names(p: PhaseConfig) -> tuple[str, str, str]:
    """(corpus artifact, model artifact, run directory) of a phase."""
    return f"corpus/course-{p.name}", f"model/course-{p.name}", f"course-{p.name}"


def build(home: str | Path, cfg: CourseConfig | None = None, *, on_event: Callable[[Event], None] | None = None,
          stop: StopFlag | None = None, until: str | None = None, seed: str | Path | None = None) -> Workspace:
    """Run (or continue) every step of the build in the workspace ``home``; ``until`` = a phase name
    or ``"sft"`` stops after that step. ``seed``: a folder written by :func:`.seed.export`, imported into a
    workspace that has no build of its own yet (the build goes on after the seed's phases)."""
    cfg = cfg or CourseConfig()
    ws = Workspace(Path(home))
    em = Emitter("course", on_event)
    if seed is not None:
        from .seed import import_seed

        if import_seed(ws, seed):
            em.emit("start", step="seed", folder=str(seed))
    _data(ws, cfg, em)
    if not ws.exists(TOKENIZER):
        from ..pretrain.train import train_tokenizer

        train_tokenizer(ws, cfg.preset.vocab_size, on_event=on_event)
    prev = None
    for p in cfg.phases:
        corpus, model, _ = phase_names(p)
        seeded = ws.exists(model) and "seed" in ws.get(model).params  # its corpus is not needed: it has finished
        if not seeded and not _corpus_current(ws, p, cfg.seed):
            course_corpus(ws, p, cfg.seed, em)
            _forget_run(ws, p)  # checkpoints trained on another corpus are not this phase's to resume
        if not phase_done(ws, p):
            if seeded:
                raise InputError(f"phase {p.name!r} came from a seed ({ws.get(model).params['seed']['folder']}) and its "
                                 "recipe now asks for more than the seed finished: build in a new --home without the "
                                 "seed (--no-seed), or restore the recipe",
                                 zh=f"阶段 {p.name!r} 来自种子（{ws.get(model).params['seed']['folder']}），而它的配方现在要求的"
                                    "比种子完成的更多：请在新的 --home 中不带种子（--no-seed）重新构建，或恢复原来的配方")
            pretrain_phase(ws, cfg, p, init_from=prev, on_event=on_event, stop=stop)
        prev = model
        if until == p.name:
            return ws
    scfg = sft_config(ws, cfg, base=prev)
    if not _finished(ws, "model/sft", scfg.to_dict()):
        from ..finetune.entry import run as finetune_run
        from ..numerics import machine

        t0 = time.perf_counter()
        finetune_run(ws, scfg, on_event=on_event, stop=stop)
        # the fine-tune's machine and wall time, beside the phases' records (ship copies them into the manifest)
        if ws.exists("model/sft"):
            _write_json(ws.root / "runs" / SFT_SESSION, {"artifact": ws.get("model/sft").id, "machine": machine(),
                                                          "seconds": round(time.perf_counter() - t0, 1)})
    return ws


def phase_done(ws: Workspace, p: PhaseConfig) -> bool:
    """A phase is done when its model exists, unstopped and up to date with its inputs, and either ran every
    step or reached its probe target. A phase whose steps were raised after it ended short of its target
    (copying had not formed yet) continues from its last checkpoint on the same curve."""
    _, model, run = phase_names(p)
    if not _finished(ws, model):
        return False
    art = ws.get(model)
    if (art.metrics.get("steps") or 0) >= p.max_steps or p.stop_gain is None:
        return True
    curve = read_curve(ws.root / "runs" / f"{run}.probe.jsonl")
    last = curve[-1] if curve else {}
    key = "pieces_" if p.runs_pieces else ""  # a sub-vocabulary phase is judged on its own pieces
    gain = min(last.get(f"{key}gain", 0), *(last.get(f"gain_{n}", 0) for n in OTHER_LENGTHS))
    copied = min(last.get(f"{key}copied", 0), *(last.get(f"copied_{n}", 0) for n in OTHER_LENGTHS))
    return gain >= p.stop_gain and copied >= (p.stop_copied or 0)


def _finished(ws: Workspace, name: str, config: dict | None = None) -> bool:
    """Whether ``name`` exists, was not stopped part-way, is not stale (an input changed since: an earlier phase
    trained further) and (given ``config``) was made with it."""
    if not ws.exists(name) or ws.get(name).metrics.get("stopped") or ws.is_stale(ws.get(name)):
        return False
    return config is None or json.loads(json.dumps(ws.get(name).params.get("config"))) == json.loads(json.dumps(config))


def _data(ws: Workspace, cfg: CourseConfig, em: Emitter) -> None:
    if ws.exists("corpus/clean"):
        return
    from ..data.config import DataConfig
    from ..data.entry import run as data_run

    em.emit("start", step="data", profile=cfg.data_profile)
    data_run(ws, DataConfig.for_profile(cfg.data_profile))


def corpus_params(p: PhaseConfig, seed: int) -> dict:
    """What a phase's corpus is made from: a corpus made with other parameters is made again."""
    return {"phase": p.name, "copy_share": p.copy_share, "copy_kinds": p.copy_kinds, "runs_pieces": p.runs_pieces,
            "seed": seed}


def _forget_run(ws: Workspace, p: PhaseConfig) -> None:
    import shutil

    _, _, run = phase_names(p)
    runs = ws.root / "runs"
    shutil.rmtree(runs / run, ignore_errors=True)
    for suffix in (".probe.jsonl", ".sessions.json"):
        (runs / f"{run}{suffix}").unlink(missing_ok=True)


def _corpus_current(ws: Workspace, p: PhaseConfig, seed: int) -> bool:
    """Whether the phase's corpus exists and was made with its current parameters (a parameter the corpus does not
    record and the phase leaves at None counts as the same: corpora made before it existed)."""
    corpus, _, _ = phase_names(p)
    if not ws.exists(corpus):
        return False
    made = ws.get(corpus).params
    want = json.loads(json.dumps(corpus_params(p, seed)))
    return all(made.get(k) == v for k, v in want.items() if v is not None or k in made)


def course_corpus(ws: Workspace, p: PhaseConfig, seed: int, em: Emitter):
    """``corpus/course-<p>``: the natural train documents, repeated to fill the phase's natural share,
    and fresh copy-rich documents for the rest (its held-out split: the natural held-out documents).
    A row is ``{"text", "ids", "kind"}``: ``ids`` (token ids, taken as they are) where not empty."""
    import datasets

    from ..artifacts import load_corpus
    from ..models.tokenizer import load_tokenizer

    corpus_name, _, _ = phase_names(p)
    tok = load_tokenizer(ws.get(TOKENIZER).path)
    train = load_corpus(ws, "train")["text"]
    heldout = load_corpus(ws, "heldout")["text"]
    natural_tokens = sum(len(x) for x in tok(list(train), add_special_tokens=False)["input_ids"]) + len(train)
    want_copy = p.tokens * p.copy_share
    repeats = max(1, math.ceil(p.tokens * (1 - p.copy_share) / natural_tokens)) if p.copy_share < 1 else 0
    margin = probe_margin(len(tok))
    low, high = margin, len(tok) - margin  # the probe's range: clear of the special and byte pieces at either end
    if p.runs_pieces:
        high = min(high, margin + p.runs_pieces)
    pieces = [t for t in tok.convert_ids_to_tokens(list(range(low, high)))
              if not (t.startswith("<") and t.endswith(">")) and t != "▁"]
    em.emit("start", step=f"corpus {p.name}", natural_tokens=natural_tokens, repeats=repeats)
    docs, copy_tokens, batch = [], 0, 0
    while copy_tokens < want_copy:
        n = int(min(20_000, max(50, (want_copy - copy_tokens) / 40)))  # ~40 tokens a document
        new = copy_rich_documents(train, pieces, n, seed=seed * 1000 + batch + 1, weights=p.copy_kinds,
                                  ids=(low, high))
        batch += 1
        texts = [d["text"] for d in new if not d["ids"]]
        copy_tokens += sum(len(x) + 1 for x in tok(texts, add_special_tokens=False)["input_ids"]) if texts else 0
        copy_tokens += sum(len(d["ids"]) + 1 for d in new if d["ids"])
        docs.extend(new)
    kinds: dict[str, int] = {}
    for d in docs:
        kinds[d["kind"]] = kinds.get(d["kind"], 0) + 1
    rows = [{"text": t, "ids": [], "kind": "natural"} for _ in range(repeats) for t in train] + docs
    random.Random(seed).shuffle(rows)
    features = datasets.Features({"text": datasets.Value("string"), "ids": datasets.Sequence(datasets.Value("int32")),
                                  "kind": datasets.Value("string")})
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list(rows, features=features),
                               "heldout": datasets.Dataset.from_list(
                                   [{"text": t, "ids": [], "kind": "natural"} for t in heldout], features=features)})
    with ws.write(corpus_name, kind="corpus", stage="course", parents=["corpus/clean", TOKENIZER],
                  params=corpus_params(p, seed)) as w:
        dd.save_to_disk(str(w.path / "dataset"))
        w.metrics.update({"natural_tokens": natural_tokens, "natural_repeats": repeats,
                          "copy_rich_tokens": copy_tokens, "copy_rich_documents": len(docs),
                          "copy_rich_kinds": kinds, "train_documents": len(rows)})
    return ws.get(corpus_name)


class ProbeCallback:
    """Measures the copy probe every ``every`` steps (the curve goes to ``path``, one JSON line per
    point, kept across resumes) and ends the phase once it reaches ``stop_gain`` / ``stop_copied``. With
    ``pieces`` (a sub-vocabulary phase) each point also holds the probe over those pieces
    (``pieces_gain`` / ``pieces_copied``), and the targets apply to it."""

    def __init__(self, tok, path: Path, every: int, em: Emitter, tokens_per_step: int,
                 stop_gain: float | None = None, stop_copied: float | None = None, pieces: int | None = None):
        from transformers import TrainerCallback

        self.tok, self.path, self.every, self.em = tok, Path(path), every, em
        self.tokens_per_step, self.stop_gain, self.stop_copied = tokens_per_step, stop_gain, stop_copied
        self.pieces = pieces
        outer = self

        class _CB(TrainerCallback):
            def on_step_end(self, args, state, control, model=None, **kw):
                if state.global_step % outer.every == 0:
                    outer.measure(model, state, control)

        self.callback = _CB()

    def measure(self, model, state, control) -> dict:
        from ..models.hf import HFModel
        from ..models.probes import copy_probe

        was = model.training
        model.eval()
        t = time.perf_counter()
        m = HFModel(model, copy.copy(self.tok))
        r = copy_probe(m)
        # the same probe with runs of other lengths: a head that looks back a fixed 32 positions passes the probe
        # without copying by content (runs of one length taught this model exactly that: gain 8.1 at 32, < 0 at 24
        # and 40), so the targets hold only where every length gains
        other = {n: copy_probe(m, length=n, pieces=self.pieces) for n in OTHER_LENGTHS}
        sub = copy_probe(m, pieces=self.pieces) if self.pieces else None
        model.train(was)
        point = {"step": state.global_step, "tokens": state.global_step * self.tokens_per_step,
                 "gain": r["gain"], "copied": r["copied"], "first_nll": r["first_nll"],
                 "second_nll": r["second_nll"], **{f"gain_{n}": o["gain"] for n, o in other.items()},
                 **{f"copied_{n}": o["copied"] for n, o in other.items()}}
        if sub:
            point.update(pieces=self.pieces, pieces_gain=sub["gain"], pieces_copied=sub["copied"],
                         pieces_first_nll=sub["first_nll"], pieces_second_nll=sub["second_nll"])
        point.update(seconds=round(time.perf_counter() - t, 2), time=round(time.time(), 1))
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(point) + "\n")
        self.em.emit("probe", **point)
        judged = sub or r
        gain = min([judged["gain"], *(o["gain"] for o in other.values())])
        copied = min([judged["copied"], *(o["copied"] for o in other.values())])
        if self.stop_gain is not None and gain >= self.stop_gain and copied >= (self.stop_copied or 0):
            control.should_training_stop = True
        return point


def _write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(".partial")
    tmp.write_text(json.dumps(obj, indent=1), encoding="utf-8")
    tmp.replace(path)


def _span(session: dict, curve: list[dict]) -> float:
    """A killed session's seconds: from its start to its last probe point."""
    import datetime as dt

    t = dt.datetime.strptime(session["started"], "%Y-%m-%dT%H:%M:%S%z").timestamp()
    times = [c["time"] for c in curve if c["time"] >= t]
    return max(times) - t if times else 0.0


def read_curve(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def pretrain_phase(ws: Workspace, cfg: CourseConfig, p: PhaseConfig, *, init_from: str | None,
                   on_event=None, stop: StopFlag | None = None):
    from dataclasses import replace

    from ..models.tokenizer import load_tokenizer
    from ..numerics import machine
    from ..pretrain.config import PretrainConfig
    from ..pretrain.train import last_checkpoint, pretrain, run_dir

    corpus, model, run = phase_names(p)
    pcfg = PretrainConfig(preset=replace(cfg.preset, block_size=p.block_size), batch_size=p.batch_size,
                          max_steps=p.max_steps, warmup_steps=p.warmup_steps, lr_scheduler=p.lr_scheduler,
                          optimizer=p.optimizer, weight_decay=p.weight_decay, muon_lr=p.muon_lr,
                          learning_rate=p.learning_rate, embedding_lr=p.embedding_lr,
                          eval_every=max(p.probe_every, p.max_steps // 20), eval_blocks=48,
                          sample_every=max(p.probe_every, p.max_steps // 5), save_every=max(p.probe_every, 250),
                          log_every=25, seed=cfg.seed)
    # continue the run's checkpoints, unless the phase's model was made from inputs that changed since
    resume = last_checkpoint(ws, run) is not None and not (ws.exists(model) and ws.is_stale(ws.get(model)))
    tok = load_tokenizer(ws.get(TOKENIZER).path)
    rd = run_dir(ws, run)
    if not resume and rd.exists():
        import shutil

        shutil.rmtree(rd)
    rd.mkdir(parents=True, exist_ok=True)
    curve_path = rd.parent / f"{run}.probe.jsonl"  # beside the run: pretrain() recreates the run directory
    if not resume and curve_path.exists():
        curve_path.unlink()
    em = Emitter("course", on_event)
    probe = ProbeCallback(tok, curve_path, p.probe_every, em, pcfg.tokens_per_step, p.stop_gain, p.stop_copied,
                          pieces=p.runs_pieces)
    # every session of the phase is recorded as it starts (a killed one keeps its start; its probe points carry
    # their times), and completed when it ends
    log = rd.parent / f"{run}.sessions.json"
    sessions = json.loads(log.read_text(encoding="utf-8")) if resume and log.is_file() else []
    ckpt = last_checkpoint(ws, run) if resume else None
    sessions.append({"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "from_step": int(ckpt.rsplit("-", 1)[1]) if ckpt else 0,
                     "machine": machine()})
    _write_json(log, sessions)
    t0 = time.perf_counter()
    res = pretrain(ws, pcfg, on_event=on_event, stop=stop, resume=resume, extra_callbacks=[probe.callback],
                   corpus=corpus, init_from=None if resume else init_from, output=model, run=run)
    sessions[-1].update(to_step=res.steps, seconds=round(time.perf_counter() - t0, 1))
    _write_json(log, sessions)
    # the phase's record: the probe curve over every session it took, the tokens, the machines
    art = ws.get(model)
    curve = read_curve(curve_path)
    (art.path / "probe_curve.json").write_text(json.dumps(curve, indent=1), encoding="utf-8")
    meta = {"phase": p.name, "batch_x_context": p.batch_size * p.block_size,
            "predicted_induction_tokens": round(induction_threshold(p.batch_size * p.block_size)),
            "tokens_seen": res.steps * pcfg.tokens_per_step, "machine": machine(), "probe_points": len(curve),
            "seconds": round(sum(x.get("seconds") or _span(x, curve) for x in sessions), 1), "sessions": sessions}
    _write_json(art.path / "course_phase.json", meta)
    return res


def sft_config(ws: Workspace, cfg: CourseConfig, *, base: str):
    """The fine-tune stage's config for the course assistant: the chain's mixture ×``sft_scale`` plus
    reading-comprehension conversations (:mod:`.reading`, written beside the workspace's artifacts)."""
    from dataclasses import replace

    from ..artifacts import load_corpus
    from ..finetune.config import SFTConfig
    from ..finetune.data import SFTDataSettings
    from .reading import reading_conversations

    d = SFTDataSettings()
    data = replace(d, tool_examples=d.tool_examples * cfg.sft_scale, date_examples=d.date_examples * cfg.sft_scale,
                   notool_examples=d.notool_examples * cfg.sft_scale, date_questions=tuple(cfg.sft_date_questions),
                   seed=cfg.seed)
    custom = None
    if cfg.reading_examples:
        # named by what made it, so a changed recipe writes (and fine-tunes on) a new file
        mix = tuple((str(s), float(w)) for s, w in cfg.reading_mix)
        key = hashlib.sha256(json.dumps([cfg.reading_examples, mix, cfg.seed, READING_VERSION]).encode()).hexdigest()
        custom = ws.root / f"course_reading-{key[:12]}.jsonl"
        if not custom.is_file():
            rows = reading_conversations(load_corpus(ws, "train").to_list(), cfg.reading_examples, seed=cfg.seed,
                                         mix=mix)
            tmp = custom.with_suffix(".partial")
            tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
            tmp.replace(custom)
    return SFTConfig(base=base, data=data, epochs=cfg.sft_epochs, seed=cfg.seed, learning_rate=cfg.sft_learning_rate,
                     max_length=cfg.sft_max_length,
                     custom_data=str(custom) if custom else None)
