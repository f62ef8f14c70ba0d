"""Pretraining with the HF Trainer: packed sequences, cosine schedule with warmup, held-out loss
and bits-per-byte, checkpoints, graceful stop and resume.

The engine reports through events (``begin``, ``log``, ``eval``, ``sample``, ``checkpoint``,
``end``); :class:`EventCallback` turns Trainer hooks into those events, so any HF Trainer can feed
the training panel. On N processes it runs under ``torchrun`` as the Trainer's DDP (``--nproc N``:
:mod:`.launch`): the config's batch is the global batch, split across the processes, and only rank 0
writes (run directory, events, the artifact); a test checks that 2 processes give 1 process's curve.
"""
from __future__ import annotations

import copy
import json
import math
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import InputError, Msg, zh_of
from ..events import Emitter, Event, StopFlag, train_rate
from ..budget import CEILING, budget_metrics, floor_steps, for_stage, train_timed
from ..numerics import resolve, utilisation
from ..workspace import Artifact, Workspace
from .model import llama_config, size_arithmetic
from .optim import build_optimizer, zero_init_residual_projections
from .config import PROMPTS, PretrainConfig  # noqa: F401 (importable from here too)
from .tokenizer import TokenizerSettings, load_tokenizer, save_tokenizer, train_sentencepiece

TOKENIZER = "tokenizer/spm"
MODEL = "model/base"


# ---- tokenizer stage ---------------------------------------------------------------------------
def train_tokenizer(ws: Workspace, vocab_size: int, *, corpus: str = "corpus/clean",
                    settings: TokenizerSettings | None = None,
                    on_event: Callable[[Event], None] | None = None) -> Artifact:
    """``tokenizer/spm``: sentencepiece on ``corpus/clean``'s train split plus the tool protocol's
    text (``settings.protocol_rounds``; 0 = the corpus alone)."""
    from ..artifacts import load_corpus
    from .tokenizer import byte_fallback_rate, chars_per_token, tool_call_tokens

    ws = ws.for_stage("pretrain")  # reads only what stages.py declares for the stage
    settings = replace(settings or TokenizerSettings(), vocab_size=vocab_size)
    em = Emitter("pretrain", on_event)
    src = ws.get(corpus)  # a missing corpus names the data lab
    train = load_corpus(ws, "train", corpus)
    heldout = load_corpus(ws, "heldout", corpus)
    em.emit("start", step="tokenizer", documents=len(train))
    t0 = time.perf_counter()
    with ws.write(TOKENIZER, kind="tokenizer", stage="pretrain", parents=[src],
                  params={"type": "sentencepiece-bpe", "vocab_size": vocab_size, "byte_fallback": True,
                          "normalization": "identity", "protocol_rounds": settings.protocol_rounds,
                          "split_by_unicode_script": settings.split_by_unicode_script}) as w:
        train_sentencepiece(train["text"], w.path, settings)
        tok = load_tokenizer(w.path)
        calls = tool_call_tokens(tok)
        zh = [t for t, lg in zip(heldout["text"], heldout["lang"]) if lg == "zh"][:200]
        en = [t for t, lg in zip(heldout["text"], heldout["lang"]) if lg == "en"][:200]
        w.metrics.update({
            "vocab_size": len(tok), "chars_per_token_zh": round(chars_per_token(tok, zh), 3) if zh else None,
            "chars_per_token_en": round(chars_per_token(tok, en), 3) if en else None,
            "byte_fallback_rate_zh": round(byte_fallback_rate(tok, zh), 4) if zh else None,
            "tokens_per_tool_call": calls["median"], "tokens_per_tool_call_max": calls["max"],
            "seconds": round(time.perf_counter() - t0, 1)})
    em.emit("done", step="tokenizer")
    return ws.get(TOKENIZER)


# ---- data -------------------------------------------------------------------------------------
def pack(tok, texts, block_size: int, max_blocks: int | None = None, *,
         what: str = Msg("the corpus", "语料")) -> tuple[np.ndarray, dict]:
    """Concatenate documents (each ended by EOS) and cut into blocks of ``block_size`` tokens. ``what`` names the
    texts in an error (a :class:`~puyu_lab.errors.Msg` names them in Chinese too). A document is a text, or a list
    of token ids taken as they are (the course build's random runs: text would be re-tokenized into other pieces)."""
    ids: list[int] = []
    n_bytes = 0
    limit = None if max_blocks is None else max_blocks * block_size
    for t in texts:
        if isinstance(t, str):
            ids.extend(tok(t, add_special_tokens=False)["input_ids"])
            n_bytes += len(t.encode("utf-8")) + 1
        else:
            ids.extend(int(i) for i in t)
            n_bytes += len(tok.decode(list(t)).encode("utf-8")) + 1
        ids.append(tok.eos_token_id)
        if limit is not None and len(ids) >= limit:
            break
    n_tokens = len(ids)
    n = len(ids) // block_size
    if n == 0:
        raise InputError(f"{what} has only {len(ids):,} tokens: not one block of {block_size} tokens to train or "
                         f"measure on. Add documents (more data into corpus/clean) or use a smaller block_size "
                         f"(preset.block_size ≤ {max(1, len(ids))})",
                         zh=f"{zh_of(what)} 只有 {len(ids):,} 个词元：凑不满一个 {block_size} 词元的块来训练或评估。"
                            f"请补充文档（往 corpus/clean 加更多数据），或用更小的 block_size"
                            f"（preset.block_size ≤ {max(1, len(ids))}）")
    arr = np.asarray(ids[: n * block_size], dtype=np.int64).reshape(n, block_size)
    return arr, {"tokens": n_tokens, "bytes": n_bytes, "blocks": n, "tokens_per_byte": n_tokens / max(1, n_bytes)}


def documents(split) -> list:
    """A corpus split's documents for :func:`pack`: each row's text, or its token ids where a course corpus
    gives them (an ``ids`` column, empty for text rows)."""
    if "ids" not in split.column_names:
        return split["text"]
    return [ids if ids else text for text, ids in zip(split["text"], split["ids"])]


class Blocks:
    """A torch-style dataset of packed blocks (labels = inputs; the model shifts them)."""

    def __init__(self, arr: np.ndarray):
        import torch

        self.t = torch.from_numpy(arr)

    def __len__(self) -> int:
        return len(self.t)

    def __getitem__(self, i):
        x = self.t[i]
        return {"input_ids": x, "labels": x}


# ---- events from the Trainer ----------------------------------------------------------------------
def generate_samples(model, tok, prompts, max_new_tokens: int = 32, seed: int = 0, *,
                     use_cache: bool = True) -> list[str]:
    """Sampled continuations of fixed prompts (temperature 0.8, top-k 40, fixed seed).

    With ``use_cache`` each new token is one forward step over the KV cache; without, the whole
    sequence is re-encoded every token (the same tokens, slower: ``make bench`` compares them)."""
    import torch

    was_training = model.training
    model.eval()
    out = []
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in prompts:
            ids = tok(p, return_tensors="pt")["input_ids"].to(model.device)
            step_in, past = ids, None
            for _ in range(max_new_tokens):
                res = model(input_ids=step_in, cache=past, use_cache=use_cache)
                past = res.cache if use_cache else None
                logits = res.logits[0, -1].float() / 0.8
                v, ix = torch.topk(logits, 40)
                nxt = ix[torch.multinomial(torch.softmax(v, -1).cpu(), 1, generator=g)].to(ids.device)
                ids = torch.cat([ids, nxt.view(1, 1)], dim=1)
                step_in = nxt.view(1, 1) if use_cache else ids
                if nxt.item() == tok.eos_token_id:
                    break
            out.append(tok.decode(ids[0], skip_special_tokens=True))
    if was_training:
        model.train()
    return out


def make_event_callback(emitter: Emitter, cfg: PretrainConfig, tok=None, stop: StopFlag | None = None,
                        tokens_per_byte: float | None = None, sample_fn: Callable | None = None):
    """The pretrain run's Trainer → events bridge (:func:`puyu_lab.events.trainer_callback`); by
    default every ``cfg.sample_every`` steps it samples continuations of ``cfg.prompts``."""
    from ..events import trainer_callback

    if sample_fn is None and tok is not None:
        def sample_fn(model):
            return dict(zip(cfg.prompts, generate_samples(model, tok, cfg.prompts, cfg.sample_tokens, cfg.seed)))
    return trainer_callback(emitter, tokens_per_step=cfg.tokens_per_step, stop=stop, sample_fn=sample_fn,
                            sample_every=cfg.sample_every, tokens_per_byte=tokens_per_byte)


# ---- the run --------------------------------------------------------------------------------------
@dataclass
class PretrainResult:
    steps: int
    max_steps: int
    stopped: bool
    checkpoint: str | None
    history: list[dict]
    artifact: Artifact | None
    samples_before: dict[str, str] = field(default_factory=dict)
    samples_after: dict[str, str] = field(default_factory=dict)


def run_dir(ws: Workspace, run: str = "pretrain") -> Path:
    """Scratch space for checkpoints (not an artifact: it is work in progress)."""
    return ws.root / "runs" / run


def last_checkpoint(ws: Workspace, run: str = "pretrain") -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    d = run_dir(ws, run)
    return get_last_checkpoint(str(d)) if d.is_dir() else None


def pretrain(ws: Workspace, cfg: PretrainConfig | None = None, *, on_event: Callable[[Event], None] | None = None,
             stop: StopFlag | None = None, resume: bool = False, extra_callbacks: list | None = None,
             corpus: str = "corpus/clean", init_from: str | None = None, output: str = MODEL,
             run: str = "pretrain") -> PretrainResult:
    """Train ``model/base`` from ``tokenizer/spm`` and ``corpus/clean``. With ``resume``, continue
    from the last checkpoint (after a Stop) on the same curve.

    A staged recipe (the course build) names its own ``corpus`` artifact, starts a phase from an
    earlier phase's weights (``init_from``, a model artifact of the same preset and tokenizer),
    writes ``output`` and keeps its checkpoints under ``runs/<run>``."""
    import torch
    from transformers import LlamaForCausalLM, Trainer, TrainingArguments, set_seed

    from ..artifacts import load_corpus

    from .launch import backend, check_worker, world

    ws = ws.for_stage("pretrain")  # reads only what stages.py declares for the stage
    cfg = cfg or PretrainConfig()
    cuda = torch.cuda.is_available()
    rank, nproc = world()  # under torchrun: this process's rank among nproc (DDP); else 0 of 1
    if nproc > 1:
        check_worker(cfg, nproc, cuda=cuda)
    main = rank == 0  # only rank 0 writes: the run directory, the events, the artifact
    em = Emitter("pretrain", on_event if main else None)
    corpus_name = corpus
    corpus = ws.get(corpus_name)
    tok_art = ws.get(TOKENIZER)
    tok = load_tokenizer(tok_art.path)
    set_seed(cfg.seed)
    train_arr, train_info = pack(tok, documents(load_corpus(ws, "train", corpus_name)), cfg.preset.block_size,
                                 what=Msg(f"{corpus_name}'s train split", f"{corpus_name} 的训练集"))
    eval_arr, eval_info = pack(tok, documents(load_corpus(ws, "heldout", corpus_name)), cfg.preset.block_size,
                               cfg.eval_blocks, what=Msg(f"{corpus_name}'s held-out split", f"{corpus_name} 的留出集"))
    em.emit("data", train_blocks=len(train_arr), train_tokens=train_info["tokens"], eval_blocks=len(eval_arr),
            tokens_per_byte=eval_info["tokens_per_byte"])

    out = run_dir(ws, run)
    ckpt = last_checkpoint(ws, run) if resume else None
    if resume and ckpt is None:
        from ..errors import MissingInput

        raise MissingInput(f"nothing to resume: no checkpoint in {out}; start a new run",
                           zh=f"没有可以继续的训练：{out} 中没有检查点；请开始新的训练")
    identity = _run_identity(tok_art, cfg)
    if resume:
        _check_resume(out, identity)
    numerics = resolve(cfg.bf16, "cuda" if cuda else "cpu")
    per_process = cfg.batch_size // nproc  # the config's batch is the global one
    args = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=per_process,
        per_device_eval_batch_size=_eval_batch(len(eval_arr), per_process, nproc),
        gradient_accumulation_steps=cfg.grad_accum, learning_rate=cfg.learning_rate, lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_steps, max_steps=cfg.max_steps,  # the optimizer: build_optimizer(cfg)
        max_grad_norm=1.0, logging_steps=cfg.log_every, logging_first_step=True, eval_strategy="steps",
        eval_steps=cfg.eval_every, save_strategy="steps", save_steps=cfg.save_every, save_total_limit=2,
        report_to="none", use_cpu=not cuda, bf16=numerics.bf16, fp16=numerics.fp16, dataloader_num_workers=0,
        seed=cfg.seed,
        disable_tqdm=not cfg.progress_bar, remove_unused_columns=False, dataloader_pin_memory=cuda,
        # DDP (torchrun): every parameter gets a gradient, so DDP need not search the graph for unused ones. The
        # step-0 held-out loss comes from the Trainer's own eval_on_start: an evaluate() before train() marks the
        # model as prepared, and train() then never wraps it in DistributedDataParallel — each process would train
        # alone on its share, silently (seen with transformers 5.25 / accelerate 1.16; tests/pretrain/test_ddp.py)
        **({"ddp_backend": backend(cuda), "ddp_find_unused_parameters": False, "eval_on_start": not resume}
           if nproc > 1 else {}),
    )
    # (the arguments set up the process group under torchrun: the other ranks wait here for rank 0's directory)
    with args.main_process_first(local=False, desc="the run directory"):
        if main:
            if not resume and out.exists():
                shutil.rmtree(out)
            out.mkdir(parents=True, exist_ok=True)
            (out / RUN_FILE).write_text(json.dumps(identity, indent=1), encoding="utf-8")
    start = ws.get(init_from) if init_from else None
    if start is not None:
        model = LlamaForCausalLM.from_pretrained(str(start.path))
        if model.config.vocab_size != len(tok) or model.config.hidden_size != cfg.preset.hidden_size:
            raise InputError(f"init_from={init_from!r} is not this preset and tokenizer (vocabulary "
                             f"{model.config.vocab_size} vs {len(tok)}, width {model.config.hidden_size} vs "
                             f"{cfg.preset.hidden_size}): start from a model of the same preset, or from scratch",
                             zh=f"init_from={init_from!r} 与当前的预设和分词器不一致（词表 "
                                f"{model.config.vocab_size} 对 {len(tok)}，宽度 {model.config.hidden_size} 对 "
                                f"{cfg.preset.hidden_size}）：请从同一预设的模型出发，或者从头训练")
    else:
        model = LlamaForCausalLM(llama_config(cfg.preset, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id))
        zero_init_residual_projections(model)
    t_sample = time.perf_counter()
    before = {} if resume or not main else dict(zip(cfg.prompts, generate_samples(model, tok, cfg.prompts, cfg.sample_tokens, cfg.seed)))
    t_sample = time.perf_counter() - t_sample if before else None
    if before:
        em.emit("sample", step=0, samples=before)
    em.emit("numerics", **numerics.to_dict(), summary=numerics.summary())
    if cfg.budget_s:  # a ceiling only: the budget's plan decides where the run ends
        args.max_steps = cfg.max_steps * CEILING
    cb = make_event_callback(em, cfg, tok if main else None, stop, eval_info["tokens_per_byte"])
    trainer = Trainer(model=model, args=args, train_dataset=Blocks(train_arr), eval_dataset=Blocks(eval_arr),
                      callbacks=[cb, *(extra_callbacks or [])],
                      optimizers=(build_optimizer(model, cfg, ns_dtype=numerics.muon_ns_dtype), None))
    if stop is not None:
        stop.clear()
    initial = _initial_eval(ws, output) if resume else None
    t_eval = None
    if not resume and nproc == 1:  # the untrained model's held-out loss: the curve's first point (and an evaluation's price)
        t_eval = time.perf_counter()
        initial = {"step": 0, "eval_loss": trainer.evaluate()["eval_loss"]}
        t_eval = time.perf_counter() - t_eval
    budget = None
    if cfg.budget_s:
        budget = for_stage(cfg.budget_s, em, resume_from=ckpt, guess_steps=cfg.max_steps,
                           warmup_ratio=cfg.warmup_steps / cfg.max_steps, evals=cfg.max_steps // cfg.eval_every,
                           samples=cfg.max_steps // cfg.sample_every if cfg.sample_every else 0,
                           saves=cfg.max_steps // cfg.save_every, eval_cost_s=t_eval, sample_cost_s=t_sample,
                           max_steps=args.max_steps, min_steps=floor_steps(cfg.min_steps, cfg.max_steps),
                           followers=[cb])
        trainer.add_callback(budget)  # after the event bridge: its step times include the bridge's samples
    t_train = train_timed(trainer, budget, resume_from=ckpt)
    state = trainer.state
    stopped = cb.stopped and state.global_step < state.max_steps
    if not any("eval_loss" in h and h.get("step") == state.global_step for h in state.log_history):
        trainer.evaluate()  # the final held-out loss, also after a Stop
    if any(h.get("step") == 0 and "eval_loss" in h for h in state.log_history):
        initial = None  # the Trainer's own step-0 evaluation (N processes: eval_on_start, kept in a checkpoint)
    history = ([initial] if initial else []) + list(trainer.state.log_history)
    if not main:  # the other ranks wait for rank 0's artifact, then return it too
        trainer.accelerator.wait_for_everyone()
        return PretrainResult(state.global_step, state.max_steps, stopped, last_checkpoint(ws, run), history,
                              ws.get(output))
    after = dict(zip(cfg.prompts, generate_samples(trainer.model, tok, cfg.prompts, cfg.sample_tokens, cfg.seed)))
    em.emit("sample", step=state.global_step, samples=after)
    evals = [h for h in history if "eval_loss" in h]
    tpb = eval_info["tokens_per_byte"]
    metrics = {
        "steps": state.global_step, "max_steps": state.max_steps, "stopped": stopped,
        "eval_loss_first": evals[0]["eval_loss"] if evals else None, "eval_loss": evals[-1]["eval_loss"] if evals else None,
        "bits_per_byte": evals[-1]["eval_loss"] * tpb / math.log(2) if evals else None,
        "train_tokens_seen": state.global_step * cfg.tokens_per_step,
        "parameters": size_arithmetic(cfg.preset)["parameters"],
        "precision": numerics.dtype, "muon_ns_dtype": numerics.muon_ns_dtype if cfg.optimizer == "muon" else None,
        "tokens_per_s": round(_rate(history, cfg.tokens_per_step, _step_of(ckpt), nproc), 1),
        "train_flops_per_token": size_arithmetic(cfg.preset)["train_flops_per_token"],
        # how the run was executed: processes (DDP under torchrun) and the global batch they shared, in sequences
        "nproc": nproc, "global_batch": cfg.batch_size * cfg.grad_accum,
    }
    metrics.update(utilisation(metrics["tokens_per_s"], metrics["train_flops_per_token"], numerics))
    metrics.update(budget_metrics(budget.plan if budget else None, steps=state.global_step, train_seconds=t_train))
    # can it copy from its context yet (induction heads)? what the agent lab's tool calls will need
    from ..models.hf import HFModel
    from ..models.probes import copy_probe

    # (a copy of the tokenizer: HFModel gives a template-less tokenizer the chat template, and the base
    # model's saved tokenizer must stay without one)
    probe = copy_probe(HFModel(trainer.model, copy.copy(tok)))
    metrics.update(copy_first_nll=probe["first_nll"], copy_second_nll=probe["second_nll"], copy_gain=probe["gain"])
    with ws.write(output, kind="model", stage="pretrain", parents=[corpus, tok_art] + ([start] if start else []),
                  params={"config": cfg.to_dict(), "profile_preset": cfg.preset.to_dict(), "init_from": init_from,
                          "numerics": numerics.to_dict(),
                          "parallel": {"strategy": "ddp" if nproc > 1 else "single process", "nproc": nproc,
                                       "backend": backend(cuda) if nproc > 1 else None,
                                       "global_batch": cfg.batch_size * cfg.grad_accum,
                                       "per_process_batch": per_process, "grad_accum": cfg.grad_accum,
                                       "model_wrapper": type(trainer.model_wrapped).__name__}}) as w:
        trainer.model.save_pretrained(str(w.path))
        save_tokenizer(tok, w.path, tok_art.path / "tokenizer.model")
        (w.path / "curve.json").write_text(json.dumps(history, indent=1), encoding="utf-8")
        (w.path / "samples.json").write_text(json.dumps({"before": before, "after": after}, ensure_ascii=False,
                                                        indent=1), encoding="utf-8")
        w.metrics.update(metrics)
    trainer.accelerator.wait_for_everyone()  # (1 process: nothing to wait for)
    ckpt_path = last_checkpoint(ws, run)
    em.emit("done", **metrics)
    return PretrainResult(state.global_step, state.max_steps, stopped, ckpt_path, history, ws.get(output), before, after)


def _eval_batch(blocks: int, per_process: int, nproc: int) -> int:
    """The evaluation batch per process: on N processes the largest (≤ the training one) that divides the held-out
    blocks. The Trainer averages batch means, each repeated once per sequence, and accelerate completes a last
    partial batch with blocks from the start (even_batches): those would enter a real batch's mean and the held-out
    loss would differ from one process's. Whole padding batches come last and are dropped when gathered."""
    if nproc == 1:
        return per_process
    return max(b for b in range(1, per_process + 1) if blocks % b == 0)


def _rate(history: list[dict], tokens_per_step: int, from_step: int, nproc: int) -> float:
    """Training tokens/s (all processes together). On N processes the step-0 evaluation runs inside the Trainer's
    clock (eval_on_start) while one process makes it before: it is taken out, so the two rates compare (a resumed
    run did not make it in this session)."""
    rate = train_rate(history, tokens_per_step, from_step=from_step)
    end = next((h for h in reversed(history) if "train_runtime" in h), None)
    first = next((h for h in history if h.get("step") == 0 and "eval_runtime" in h), None)
    if nproc == 1 or from_step or not rate or not end or not first or end["train_runtime"] <= first["eval_runtime"]:
        return rate
    return rate * end["train_runtime"] / (end["train_runtime"] - first["eval_runtime"])


def _step_of(checkpoint: str | None) -> int:
    """The step a Trainer checkpoint (``…/checkpoint-<step>``) was written at; 0 for none."""
    return int(str(checkpoint).rsplit("-", 1)[1]) if checkpoint else 0


RUN_FILE = "run.json"  # what a run was started with: a resume must match it


def _run_identity(tok_art: Artifact, cfg: PretrainConfig) -> dict:
    import hashlib

    spm = tok_art.path / "tokenizer.model"
    digest = hashlib.sha256(spm.read_bytes()).hexdigest()[:16] if spm.is_file() else tok_art.id
    return {"tokenizer": {"artifact": tok_art.id, "sha256": digest}, "preset": cfg.preset.to_dict()}


def _check_resume(out: Path, now: dict) -> None:
    """Refuse to resume a run whose tokenizer or model preset changed since it started: the
    checkpoint's weights (and the packed data's token ids) would not mean the same thing."""
    f = out / RUN_FILE
    if not f.is_file():
        return  # a run started before run.json existed: nothing to compare with
    then = json.loads(f.read_text(encoding="utf-8"))
    changes, changes_zh = [], []
    if then.get("tokenizer", {}).get("sha256") != now["tokenizer"]["sha256"]:
        changes.append(f"the tokenizer ({TOKENIZER} was {then.get('tokenizer', {}).get('artifact')} when the run "
                       f"started, now {now['tokenizer']['artifact']}, with a different vocabulary)")
        changes_zh.append(f"分词器（训练开始时 {TOKENIZER} 是 {then.get('tokenizer', {}).get('artifact')}，"
                          f"现在是 {now['tokenizer']['artifact']}，词表不同）")
    old_p, new_p = then.get("preset", {}), now["preset"]
    diff = [f"{k} {old_p.get(k)} → {new_p.get(k)}" for k in sorted(set(old_p) | set(new_p)) if old_p.get(k) != new_p.get(k)]
    if diff:
        changes.append("the model preset (" + ", ".join(diff) + ")")
        changes_zh.append("模型预设（" + ", ".join(diff) + "）")
    if changes:
        raise InputError(f"cannot resume {out}: " + " and ".join(changes) + " changed since the checkpoint was "
                         "written. Start a new run (resume=False, which discards the checkpoints), or restore the "
                         "earlier tokenizer / preset to continue",
                         zh=f"无法继续训练 {out}：写入检查点之后，" + "和".join(changes_zh) + "发生了变化。"
                            "请开始新的训练（resume=False，会丢弃已有检查点），或恢复原来的分词器 / 预设后再继续")


def _initial_eval(ws: Workspace, output: str = MODEL) -> dict | None:
    """The step-0 held-out loss of the run being resumed (kept in the stopped run's curve)."""
    if not ws.exists(output):
        return None
    curve = json.loads((ws.get(output).path / "curve.json").read_text(encoding="utf-8"))
    return next((h for h in curve if h.get("step") == 0 and "eval_loss" in h), None)


def load_model(ws: Workspace, name: str = MODEL):
    """The model and tokenizer of a model artifact."""
    from transformers import AutoModelForCausalLM

    art = ws.get(name)
    return AutoModelForCausalLM.from_pretrained(str(art.path)), load_tokenizer(art.path)
