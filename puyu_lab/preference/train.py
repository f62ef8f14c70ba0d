"""Preference tuning (XTuner's DPO / ORPO) with trl's trainers on the learner's own assistant.

``train`` runs trl's ``DPOTrainer`` (the reference model is a frozen copy of the start model, or the
adapter switched off with LoRA, as trl does it) or ``ORPOTrainer`` (no reference) on ``pref/data``
(:mod:`.mixture` builds it) and writes ``model/dpo`` / ``model/orpo``. Before and after training it
scores every held-out pair through the model layer (:mod:`.scoring`: tokenized exactly as trl tokenizes
them), so the preference accuracy per source is measured on pairs the run never trained on. trl's own
metrics (rewards/chosen, rewards/rejected, margins, accuracies) reach the panel through the Trainer
bridge's ``log`` and ``eval`` events.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from typing import Callable

from ..artifacts import PREF_DATA, load_pref_pairs
from ..budget import CEILING, budget_metrics, floor_steps, for_stage, train_timed
from ..contracts.training import TrainResult
from ..errors import InputError, zh_of
from ..events import Emitter, Event, StopFlag
from ..workspace import Artifact, Workspace
from .config import PrefConfig
from .mixture import pairs_current, prepare_pairs
from .scoring import accuracy_by_source, encode_pair, score_pairs, too_long, trl_rows, trl_tokenizer


class PrefResult(TrainResult):
    """A DPO or ORPO run (``model``: the trained policy)."""


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

    ws = ws.for_stage("preference")  # reads only what stages.py declares for the stage
    cfg = replace(cfg or PrefConfig.for_profile())
    em = Emitter("preference", on_event)
    start_art = ws.get(cfg.model)
    pairs_art = pairs_current(ws, cfg) or prepare_pairs(ws, cfg)
    train_pairs, held = load_pref_pairs(ws, "train"), load_pref_pairs(ws, "heldout")
    if not train_pairs:
        raise InputError(f"{PREF_DATA} has no training pair: rebuild it (prepare_pairs) or add a custom pair file",
                         zh=f"{PREF_DATA} 中没有训练用的偏好对：请重新生成（prepare_pairs），或加入自定义偏好对文件")
    set_seed(cfg.seed)
    tok = load_tokenizer(start_art.path)
    if not tok.chat_template:
        raise InputError(f"{cfg.model} has no chat template: preference tuning starts from a chat model — "
                         "the fine-tune lab's model/sft (03_finetune.ipynb)",
                         zh=f"{cfg.model} 没有对话模板：偏好对齐要从对话模型出发——即微调实验产出的 model/sft"
                            "（03_finetune.ipynb）")
    cuda = torch.cuda.is_available()
    numerics = resolve(cfg.bf16, "cuda" if cuda else "cpu")
    em.emit("numerics", **numerics.to_dict(), summary=numerics.summary())
    model = AutoModelForCausalLM.from_pretrained(str(start_art.path), dtype=torch.float32)
    if cuda:
        model = model.to("cuda")
    long = too_long(tok, train_pairs + held, cfg.max_length)
    if long:
        more = f"; … {len(long) - 5} more" if len(long) > 5 else ""
        more_zh = f"；…… 另有 {len(long) - 5} 对" if len(long) > 5 else ""
        raise InputError(f"{cfg.custom_pairs}: {len(long)} pair(s) do not fit max_length={cfg.max_length} tokens of "
                         f"{cfg.model}'s tokenizer: " + "; ".join(long[:5]) + more,
                         zh=f"{cfg.custom_pairs}：有 {len(long)} 对超出了 max_length={cfg.max_length}"
                            f"（按 {cfg.model} 的分词器计）：" + "；".join(map(zh_of, long[:5])) + more_zh)
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
    eval_ds = datasets.Dataset.from_list(trl_rows(tok, held)) if held and cfg.eval_every else None
    trainer = _trainer(cfg, model, trl_tokenizer(tok), datasets.Dataset.from_list(trl_rows(tok, train_pairs)),
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
                           min_steps=floor_steps(cfg.min_steps, recipe_steps))
        trainer.add_callback(budget)
    if stop is not None:
        stop.check()  # a Stop pressed while the held-out pairs were scored ends the run here
    t_train = train_timed(trainer, budget)
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
