"""Preference tuning (XTuner's DPO / ORPO) with trl's trainers on the learner's own assistant.

``prepare_pairs`` writes ``pref/data`` (training and held-out pairs, each labelled with its source);
``train`` runs trl's ``DPOTrainer`` (the reference model is a frozen copy of the start model, or the
adapter switched off with LoRA, as trl does it) or ``ORPOTrainer`` (no reference) and writes
``model/dpo`` / ``model/orpo``. Before and after training it scores every held-out pair through the
model layer — the sum of log-probabilities of chosen and rejected given the prompt, tokenized
exactly as trl tokenizes them (a test checks) — so the preference accuracy per source is measured
on pairs the run never trained on. trl's own metrics (rewards/chosen, rewards/rejected, margins,
accuracies) reach the panel through the Trainer bridge's ``log`` and ``eval`` events.
"""
from __future__ import annotations

import json
import math
import re
import time
from dataclasses import asdict, dataclass, replace
from typing import Callable

from ..artifacts import CORPUS, PREF_DATA, SFT_DATA, load_corpus, load_pref_pairs, load_sft_data
from ..budget import CEILING, budget_metrics, for_stage
from ..contracts.dialogs import chatterbot_dialogs
from ..errors import InputError
from ..events import Emitter, Event, StopFlag
from ..models.template import render
from ..workspace import Artifact, Workspace, stage_entry
from .config import PrefConfig
from .pairs import (
    heldout_notool_pairs,
    heldout_tool_pairs,
    identity_pairs,
    notool_pairs_from_conversations,
    load_custom_pairs,
    prompt_key,
    sentiment_pairs,
    split_custom,
    tool_pairs_from_conversations,
)

PAIRS = PREF_DATA
_CJK = re.compile(r"[\u4e00-\u9fff]")


@dataclass
class PrefResult:
    steps: int
    max_steps: int
    stopped: bool
    history: list[dict]
    metrics: dict
    artifact: Artifact | None
    model: object = None


def _lang(text: str) -> str:
    return "zh" if _CJK.search(text) else "en"


@stage_entry("preference")
def build_pairs(ws: Workspace, cfg: PrefConfig) -> tuple[dict, list]:
    """The pair mixture from ``sft/data`` and ``corpus/clean``: ``{"train": […], "heldout": […]}`` and
    the custom file's bad lines."""
    s = cfg.pairs
    train_convs = load_sft_data(ws, "train")
    selfs = [c["messages"] for c in train_convs if c.get("kind") == "self"]
    answers: dict[str, str] = {}
    questions: dict[str, str] = {}
    for m in selfs:
        q, a = m[0]["content"], m[1]["content"]
        answers.setdefault(_lang(q), a)
        questions.setdefault(q, _lang(q))
    if set(answers) != {"zh", "en"}:
        raise InputError(f"{SFT_DATA} has no self-cognition conversations in both Chinese and English: rebuild it "
                         "in the fine-tune lab (03_finetune.ipynb) with the built-in mixture")
    held_self = load_sft_data(ws, "selfcog_heldout")
    train = identity_pairs([(lang, q) for q, lang in questions.items()], answers, s.identity_per_prompt, s.seed)
    heldout = identity_pairs([(h.get("lang") or _lang(h["prompt"]), h["prompt"]) for h in held_self], answers,
                             1, s.seed + 1)
    train += sentiment_pairs(load_corpus(ws, "train").to_list(), s.sentiment, s.seed)
    heldout += sentiment_pairs(load_corpus(ws, "heldout").to_list(), s.heldout_sentiment, s.seed + 1)
    tool_convs = [c for c in train_convs if c.get("kind") in ("tool", "date")]
    train += tool_pairs_from_conversations(tool_convs, s.tool, s.seed)
    heldout += heldout_tool_pairs(load_sft_data(ws, "arithmetic_heldout"), load_sft_data(ws, "date_heldout"),
                                  s.heldout_tool, s.seed)
    notool_convs = [c for c in train_convs if c.get("kind") == "notool"]
    train += notool_pairs_from_conversations(notool_convs, s.notool, s.seed)
    # held out: the self-cognition paraphrases and the chit-chat openings sft/data kept apart, with
    # the answers the chain knows for them (its own introduction; the dialog's real reply)
    replies = {d["messages"][0]["content"]: d["messages"][1]["content"] for d in chatterbot_dialogs()}
    qa = []
    for h in load_sft_data(ws, "notool_heldout"):
        if h.get("kind") == "self":
            qa.append((h["prompt"], answers[_lang(h["prompt"])]))
        elif h.get("kind") == "dialog" and h["prompt"] in replies:
            qa.append((h["prompt"], replies[h["prompt"]]))
    heldout += heldout_notool_pairs(qa, s.seed + 2)
    bad: list = []
    if cfg.custom_pairs:
        custom, bad = load_custom_pairs(cfg.custom_pairs)
        ctrain, cheld = split_custom(custom, s.custom_heldout_fraction, s.seed)
        train += ctrain
        heldout += cheld
    seen = {prompt_key(p) for p in train}
    leaked = [p for p in heldout if prompt_key(p) in seen]
    heldout = [p for p in heldout if prompt_key(p) not in seen]  # a prompt trained on is never held out
    import random

    random.Random(s.seed).shuffle(train)
    return {"train": train, "heldout": heldout, "dropped_heldout": len(leaked)}, bad


@stage_entry("preference")
def prepare_pairs(ws: Workspace, cfg: PrefConfig | None = None) -> Artifact:
    """Build the pair mixture → ``pref/data`` (``train.jsonl``, ``heldout.jsonl``, per-source counts)."""
    cfg = cfg or PrefConfig.for_profile()
    mix, bad = build_pairs(ws, cfg)
    parents = [ws.get(SFT_DATA), ws.get(CORPUS)]
    counts = {}
    for part in ("train", "heldout"):
        for p in mix[part]:
            counts[f"{part}_{p['source']}"] = counts.get(f"{part}_{p['source']}", 0) + 1
    with ws.write(PAIRS, kind="dataset", stage="preference", parents=parents, params=pair_params(cfg)) as w:
        for part in ("train", "heldout"):
            with open(w.path / f"{part}.jsonl", "w", encoding="utf-8") as f:
                for p in mix[part]:
                    f.write(json.dumps(p, ensure_ascii=False) + "\n")
        if bad:
            (w.path / "custom_errors.txt").write_text(
                "".join(f"{cfg.custom_pairs}:{b.line}: {b.reason}\n" for b in bad), encoding="utf-8")
        w.metrics.update({"train": len(mix["train"]), "heldout": len(mix["heldout"]), **dict(sorted(counts.items())),
                          "custom_rejected": len(bad), "heldout_dropped_shared_prompt": mix["dropped_heldout"]})
    return ws.get(PAIRS)


def pair_params(cfg: PrefConfig) -> dict:
    """What ``pref/data`` is built from besides its parents: the mixture's sizes and the custom file
    (its path and a hash of its bytes, so an edited file is read again)."""
    digest = None
    if cfg.custom_pairs:
        import hashlib
        from pathlib import Path

        f = Path(cfg.custom_pairs)
        digest = hashlib.sha256(f.read_bytes()).hexdigest() if f.is_file() else None
    return {"pairs": asdict(cfg.pairs), "custom_pairs": cfg.custom_pairs, "custom_sha256": digest}


def pairs_current(ws: Workspace, cfg: PrefConfig) -> Artifact | None:
    """``pref/data`` when it was built from ``cfg``'s mixture and today's ``sft/data`` and ``corpus/clean``;
    ``None`` when it must be (re)built."""
    if not ws.exists(PAIRS):
        return None
    art = ws.get(PAIRS)
    if ws.is_stale(art) or any(art.params.get(k) != v for k, v in pair_params(cfg).items()):
        return None
    return art


def load_pairs(ws: Workspace, part: str = "train") -> list[dict]:
    """``pref/data``'s ``train`` or ``heldout`` pairs (the reader other stages use: :func:`~puyu_lab.artifacts.load_pref_pairs`)."""
    return load_pref_pairs(ws, part)


# ---- scoring ------------------------------------------------------------------------------------------
def end_of_turn(tok) -> str | None:
    """The token the chat template closes an assistant turn with (``<|im_end|>`` for InternLM2 and
    Qwen, ``<|eot_id|>`` for Llama 3), read off the template itself; ``None`` when it is not one token."""
    return _turn_format(tok)[0]


def _turn_format(tok) -> tuple[str | None, bool]:
    """(end-of-turn token, whether the tokenizer adds BOS itself), worked out once per tokenizer."""
    cached = getattr(tok, "_puyu_turn_format", None)
    if cached is None:
        probe = render(tok, [{"role": "user", "content": "q"}, {"role": "assistant", "content": "PUYU_ANSWER"}])
        tail = probe.rsplit("PUYU_ANSWER", 1)[-1].strip()
        eot = tail if tail and len(tok.encode(tail, add_special_tokens=False)) == 1 else None
        adds_bos = bool(tok.bos_token) and tok("x")["input_ids"][:1] == [tok.bos_token_id]
        cached = tok._puyu_turn_format = (eot, adds_bos)
    return cached


def turn_texts(tok, p: dict) -> dict:
    """A conversational pair as trl's *standard* (text) format: ``prompt`` rendered by the chat template
    up to the assistant's turn; ``chosen`` / ``rejected`` the answer through the end-of-turn token and
    no further. (The template writes a newline after ``<|im_end|>``; with the conversational format
    trl would train on it, a token generation never produces — it stops at ``<|im_end|>``. The SFT
    stage trains the same span: the answer and its closing token.)"""
    prompt = render(tok, p["prompt"], add_generation_prompt=True)
    eot, adds_bos = _turn_format(tok)
    if adds_bos and prompt.startswith(tok.bos_token):
        prompt = prompt[len(tok.bos_token):]  # the tokenizer adds BOS itself
    eot = eot or ""
    return {"prompt": prompt, "chosen": p["chosen"][0]["content"] + eot,
            "rejected": p["rejected"][0]["content"] + eot}


def trl_tokenizer(tok):
    """The tokenizer handed to trl: a copy whose ``eos_token`` is the end-of-turn token, so trl (ORPO
    appends EOS to each answer; DPO to text answers) does not add ``</s>`` after a turn that is already closed."""
    import copy

    eot = end_of_turn(tok)
    if not eot:
        import warnings

        warnings.warn("the chat template does not close a turn with one token: trl will append "
                      f"{tok.eos_token} to each answer and train it", stacklevel=2)
    if not eot or eot == tok.eos_token:
        return tok
    t = copy.deepcopy(tok)
    t.eos_token = eot
    return t


def encode_pair(tok, p: dict, max_length: int | None = None) -> tuple[list[int], list[int], list[int]]:
    """(prompt, chosen, rejected) token ids, as trl's DPOTrainer tokenizes :func:`turn_texts`: the
    prompt alone and prompt + answer, the answer starting where they diverge. With ``max_length``,
    prompt + answer is cut to it from the end, as trl's collator does (``truncation_mode="keep_start"``).
    trl's ORPOTrainer tokenizes the same texts (a test checks both)."""
    from trl.data_utils import common_prefix_length

    t = turn_texts(tok, p)

    def ids(text):
        return list(tok(text)["input_ids"])

    prompt = ids(t["prompt"])
    pc, pr = ids(t["prompt"] + t["chosen"]), ids(t["prompt"] + t["rejected"])
    k = min(common_prefix_length(prompt, pc), common_prefix_length(prompt, pr))
    c, r = pc[k:], pr[k:]
    if max_length is not None:
        room = max(0, max_length - k)
        c, r = c[:room], r[:room]
    return prompt[:k], c, r


def too_long(tok, pairs: list[dict], max_length: int) -> list[str]:
    """Custom pairs trl would not train as written: a prompt that fills ``max_length`` (trl drops the
    pair) or an answer cut short by it — one line each, naming the file's line and the token counts."""
    out = []
    for p in pairs:
        if p.get("source") != "custom":
            continue
        pr, c, r = encode_pair(tok, p)
        where = f"line {p.get('line', '?')}"
        if len(pr) >= max_length:
            out.append(f"{where}: the prompt is {len(pr)} tokens, max_length is {max_length}: no answer token "
                       "would be trained; shorten the prompt or raise max_length")
        elif len(pr) + max(len(c), len(r)) > max_length:
            out.append(f"{where}: prompt + answer is {len(pr) + max(len(c), len(r))} tokens, max_length is "
                       f"{max_length}: the answer would be cut; shorten it or raise max_length")
    return out


def score_pairs(scorer, tok, pairs: list[dict], max_length: int | None = None) -> list[dict]:
    """Per pair: log p(chosen | prompt), log p(rejected | prompt) (sums over the completion's tokens,
    as DPO's log-probabilities are, cut to ``max_length`` as trl cuts them), their lengths, and whether
    chosen ranks above rejected."""
    reqs, lens = [], []
    for p in pairs:
        pr, c, r = encode_pair(tok, p, max_length)
        reqs += [(pr, c), (pr, r)]
        lens.append((len(c), len(r)))
    res = scorer.loglikelihood_tokens(reqs)
    out = []
    for i, (lc, lr) in enumerate(lens):
        c, r = res[2 * i][0], res[2 * i + 1][0]
        out.append({"logp_chosen": c, "logp_rejected": r, "margin": c - r, "chosen_tokens": lc,
                    "rejected_tokens": lr, "correct": c > r})
    return out


def accuracy_by_source(pairs: list[dict], scores: list[dict]) -> dict:
    """Held-out preference accuracy (chosen's log-probability above rejected's) and mean margin, per
    source and over all pairs."""
    out: dict = {}
    groups: dict[str, list] = {}
    for p, s in zip(pairs, scores):
        groups.setdefault(p["source"], []).append(s)
        groups.setdefault("all", []).append(s)
    for src, ss in groups.items():
        out[src] = {"n": len(ss), "accuracy": sum(s["correct"] for s in ss) / len(ss),
                    "margin": sum(s["margin"] for s in ss) / len(ss)}
    return out


# ---- training -----------------------------------------------------------------------------------------
def _trainer(cfg: PrefConfig, model, tok, train_ds, eval_ds, out, numerics, callbacks, max_steps: int):
    common = dict(output_dir=str(out), per_device_train_batch_size=cfg.batch_size,
                  per_device_eval_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.grad_accum,
                  learning_rate=cfg.learning_rate, num_train_epochs=cfg.epochs, max_steps=max_steps,
                  lr_scheduler_type="cosine", warmup_steps=0.1, logging_steps=cfg.log_every, logging_first_step=True,
                  eval_strategy="steps" if eval_ds is not None else "no",
                  eval_steps=cfg.eval_every if eval_ds is not None else None,
                  save_strategy="no", report_to="none", use_cpu=not numerics.device == "cuda", bf16=numerics.bf16,
                  fp16=numerics.fp16, seed=cfg.seed, disable_tqdm=not cfg.progress_bar, dataloader_num_workers=0,
                  max_length=cfg.max_length, beta=cfg.beta,
                  activation_checkpointing=False)  # trl turns it on by default: on a tiny model it only costs time
    peft_config = None
    if cfg.tuning == "lora":
        from peft import LoraConfig

        peft_config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, target_modules="all-linear",
                                 task_type="CAUSAL_LM")
    if cfg.method == "dpo":
        from trl import DPOConfig, DPOTrainer

        from .lmhead import compact_trainer_heads

        args = DPOConfig(loss_type=[cfg.loss_type], **common)
        trainer = DPOTrainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                             processing_class=tok, callbacks=callbacks, peft_config=peft_config)
        compact_trainer_heads(trainer)  # without Triton: score the answers' tokens only, as trl does on a GPU
        return trainer
    import os
    import warnings

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer
    args = ORPOConfig(**common)
    return ORPOTrainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds, processing_class=tok,
                       callbacks=callbacks, peft_config=peft_config)


def _trl_rows(tok, pairs: list[dict]) -> list[dict]:
    return [turn_texts(tok, p) for p in pairs]


@stage_entry("preference")
def train(ws: Workspace, cfg: PrefConfig | None = None, *, on_event: Callable[[Event], None] | None = None,
          stop: StopFlag | None = None, save: bool = True) -> PrefResult:
    """Preference-tune ``cfg.model`` on ``pref/data`` (built first if missing or built otherwise) with
    ``cfg.method``; measure held-out preference accuracy before and after; save ``model/<method>``."""
    import shutil

    import datasets
    import torch
    from transformers import AutoModelForCausalLM, set_seed

    from ..events import trainer_callback
    from ..models.hf import HFModel
    from ..models.tokenizer import load_tokenizer
    from ..numerics import resolve

    cfg = replace(cfg or PrefConfig.for_profile())
    em = Emitter("preference", on_event)
    start_art = ws.get(cfg.model)
    pairs_art = pairs_current(ws, cfg) or prepare_pairs(ws, cfg)
    train_pairs, held = load_pairs(ws, "train"), load_pairs(ws, "heldout")
    if not train_pairs:
        raise InputError(f"{PAIRS} has no training pair: rebuild it (prepare_pairs) or add a custom pair file")
    set_seed(cfg.seed)
    tok = load_tokenizer(start_art.path)
    if not tok.chat_template:
        raise InputError(f"{cfg.model} has no chat template: preference tuning starts from a chat model — "
                         "the fine-tune lab's model/sft (03_finetune.ipynb)")
    cuda = torch.cuda.is_available()
    numerics = resolve(cfg.bf16, "cuda" if cuda else "cpu")
    em.emit("numerics", **numerics.to_dict(), summary=numerics.summary())
    model = AutoModelForCausalLM.from_pretrained(str(start_art.path), dtype=torch.float32)
    if cuda:
        model = model.to("cuda")
    long = too_long(tok, train_pairs + held, cfg.max_length)
    if long:
        more = f"; … {len(long) - 5} more" if len(long) > 5 else ""
        raise InputError(f"{cfg.custom_pairs}: {len(long)} pair(s) do not fit max_length={cfg.max_length} tokens of "
                         f"{cfg.model}'s tokenizer: " + "; ".join(long[:5]) + more)
    scorer = HFModel(model, tok, name=cfg.model, batch_size=cfg.batch_size)
    t_score = time.perf_counter()
    before = score_pairs(scorer, tok, held, cfg.max_length)
    t_score = time.perf_counter() - t_score  # an evaluation's price for a time budget: trl's scores these pairs too
    acc_before = accuracy_by_source(held, before)
    em.emit("data", method=cfg.method, train=len(train_pairs), heldout=len(held), heldout_accuracy_before=acc_before,
            **{k: v for k, v in pairs_art.metrics.items() if k.startswith("train_")})

    out = ws.root / "runs" / "preference" / cfg.method
    if out.exists():
        shutil.rmtree(out)
    mean_len = sum(sum(map(len, encode_pair(tok, p))) for p in train_pairs[:64]) / min(64, len(train_pairs))
    cb = trainer_callback(em, tokens_per_step=int(mean_len * cfg.batch_size * cfg.grad_accum), stop=stop)
    t0 = time.perf_counter()
    # the recipe's steps: what a fixed-step run makes, and a budgeted run's shape (its warmup share, its evaluations)
    per_epoch = math.ceil(len(train_pairs) / (cfg.batch_size * cfg.grad_accum))
    recipe_steps = cfg.max_steps if cfg.max_steps > 0 else max(1, math.ceil(per_epoch * cfg.epochs))
    eval_ds = datasets.Dataset.from_list(_trl_rows(tok, held)) if held and cfg.eval_every else None
    trainer = _trainer(cfg, model, trl_tokenizer(tok), datasets.Dataset.from_list(_trl_rows(tok, train_pairs)),
                       eval_ds, out, numerics, [cb], recipe_steps * CEILING if cfg.budget_s else cfg.max_steps)
    if not cfg.progress_bar:  # the Trainer prints every log line without a bar: the panel shows them
        from transformers import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    budget = None
    if cfg.budget_s:
        # trl's evaluation scores the held-out pairs with the policy and (DPO) the reference model
        budget = for_stage(cfg.budget_s, em, guess_steps=recipe_steps, warmup_ratio=0.1,
                           evals=max(1, recipe_steps // cfg.eval_every) if eval_ds is not None else 0,
                           eval_cost_s=t_score * (2 if cfg.method == "dpo" else 1), max_steps=recipe_steps * CEILING,
                           min_steps=recipe_steps)
        trainer.add_callback(budget)
    if stop is not None:
        stop.check()  # a Stop pressed while the held-out pairs were scored ends the run here
    if budget is not None:
        budget.start()
    t_train = time.perf_counter()
    trainer.train()
    t_train = time.perf_counter() - t_train
    state = trainer.state
    stopped = cb.stopped and state.global_step < state.max_steps
    seconds = time.perf_counter() - t0
    trained = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)
    if cfg.tuning == "lora":
        trained = trained.merge_and_unload()
    trained = trained.float().eval()
    scorer.model = trained
    after = score_pairs(scorer, tok, held, cfg.max_length)
    acc_after = accuracy_by_source(held, after)
    history = list(state.log_history)
    evals = [h for h in history if "eval_loss" in h]
    metrics = {
        "method": cfg.method, "tuning": cfg.tuning, "steps": state.global_step, "max_steps": state.max_steps,
        "stopped": stopped, "seconds": round(seconds, 1), "precision": numerics.dtype,
        "train_pairs": len(train_pairs), "heldout_pairs": len(held),
        "heldout_accuracy_before": acc_before["all"]["accuracy"] if held else None,
        "heldout_accuracy": acc_after["all"]["accuracy"] if held else None,
        "by_source_before": acc_before, "by_source": acc_after,
        "trl_eval": {k: v for k, v in (evals[-1] if evals else {}).items() if k.startswith("eval_")},
        **budget_metrics(budget.plan if budget else None, steps=state.global_step, train_seconds=t_train),
    }
    em.emit("preference", before=acc_before, after=acc_after)
    art = None
    if save:
        art = _save(ws, cfg, trained, tok, start_art, pairs_art, history, metrics, held, before, after)
    em.emit("done", **{k: v for k, v in metrics.items() if not isinstance(v, dict)})
    return PrefResult(state.global_step, state.max_steps, stopped, history, metrics, art, trained)


def _save(ws, cfg, model, tok, start_art, pairs_art, history, metrics, held, before, after) -> Artifact:
    from ..models.tokenizer import save_tokenizer

    with ws.write(cfg.output, kind="model", stage="preference", parents=[start_art, pairs_art],
                  params={"config": cfg.to_dict()}) as w:
        model.generation_config = _generation_config(start_art)
        model.save_pretrained(str(w.path))
        spm = start_art.path / "tokenizer.model"
        save_tokenizer(tok, w.path, spm if spm.is_file() else None)
        (w.path / "curve.json").write_text(json.dumps(history, indent=1), encoding="utf-8")
        with open(w.path / "heldout_scores.jsonl", "w", encoding="utf-8") as f:
            for p, b, a in zip(held, before, after):
                f.write(json.dumps({**p, "before": b, "after": a}, ensure_ascii=False) + "\n")
        (w.path / "pref_config.json").write_text(json.dumps(cfg.to_dict(), ensure_ascii=False, indent=1),
                                                 encoding="utf-8")
        w.metrics.update(metrics)
    return ws.get(cfg.output)


def _generation_config(art):
    from transformers import GenerationConfig

    return GenerationConfig.from_pretrained(str(art.path))


def load_heldout_scores(ws: Workspace, name: str = "model/dpo") -> list[dict]:
    """The held-out pairs of a preference run with their scores before and after (the pair inspector's data)."""
    text = (ws.get(name).path / "heldout_scores.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]
