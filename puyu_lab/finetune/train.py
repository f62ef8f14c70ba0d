"""Supervised fine-tuning (XTuner-style): full, LoRA (peft) or QLoRA (bitsandbytes nf4).

The run itself (this module) is split from its parts: ``dataset`` (``sft/data`` and encoding),
``modeling`` (base, peft, merge, memory), ``scoring``, ``xtuner`` (the config text), ``config``.

``prepare_data`` writes the ``sft/data`` artifact (the mixture and its held-out sets);
``finetune`` trains on it from ``model/base`` with loss on assistant tokens only, answers fixed
evaluation prompts every N steps (like XTuner's ``EvaluateChatHook``) and warns when unrelated
prompts collapse into the self-introduction. It keeps the adapter (``adapter/sft``) and the
merged full model (``model/sft``, with the chat template) and an XTuner config summary.
"""
from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

from ..artifacts import SFT_DATA, load_sft_data  # noqa: F401 (the reader of what this stage writes)
from ..contracts.dialogs import CONTROL_PROMPTS
from ..contracts.training import TrainResult
from ..budget import CEILING, budget_metrics, floor_steps, for_stage, train_timed
from ..events import Emitter, Event, StopFlag, train_rate
from ..models.template import install_template
from ..numerics import resolve, train_flops_per_token, utilisation
from ..workspace import Artifact, Workspace
from .config import ALL_LINEAR, METHODS, SFTConfig  # noqa: F401 (importable from here too)
from .dataset import Collator, conversation_key, encode_all, prepare_data, split_eval  # noqa: F401
from .modeling import load_base, merge_adapter, resolve_base, training_memory, wrap_peft  # noqa: F401
from .scoring import collapse_rate, selfcog_score  # noqa: F401
from .xtuner import XTUNER_DATA, xtuner_config, xtuner_conversations  # noqa: F401

ADAPTER = "adapter/sft"
MODEL = "model/sft"


@dataclass
class SFTResult(TrainResult):
    """A fine-tuning run (``model`` is a peft model for LoRA / QLoRA), with its training state's memory."""

    memory: dict = field(default_factory=dict)  # training_memory's estimate: what the method keeps in memory


def run_dir(ws: Workspace) -> Path:
    return ws.root / "runs" / "finetune"


def finetune(ws: Workspace, cfg: SFTConfig | None = None, *, on_event: Callable[[Event], None] | None = None,
             stop: StopFlag | None = None, resume: bool = False, save: bool = True, score: bool = True) -> SFTResult:
    """Fine-tune ``cfg.base`` on ``sft/data`` (built first if missing). With ``save`` the adapter and
    the merged model become artifacts; with ``score`` the held-out self-cognition questions are
    answered at the end. Short comparisons pass ``save=False, score=False``."""
    import torch
    from transformers import Trainer, TrainingArguments, set_seed
    from transformers.trainer_utils import get_last_checkpoint

    from ..events import trainer_callback
    from ..models.hf import HFModel
    from ..models.tokenizer import load_tokenizer

    ws = ws.for_stage("finetune")  # reads only what stages.py declares for the stage
    cfg = replace(cfg or SFTConfig())
    em = Emitter("finetune", on_event)
    base_path, base_art = resolve_base(ws, cfg.base)
    data_art = ws.get(SFT_DATA) if ws.exists(SFT_DATA) else None
    # compared as the manifest stores them (JSON: a tuple of settings reads back as a list)
    if data_art is None or data_art.params.get("data") != json.loads(json.dumps(asdict(cfg.data))) or \
            data_art.params.get("custom_data") != cfg.custom_data:
        data_art = prepare_data(ws, cfg)  # missing, or built with other settings (another name …)
    tok = load_tokenizer(base_path, trust_remote_code=cfg.trust_remote_code)
    if not tok.chat_template:  # a base model without a chat format gets the chain's; a chat model keeps its own
        install_template(tok)
    set_seed(cfg.seed)
    convs = load_sft_data(ws, "train")
    keys: list[str] = []
    # the context the base was trained on: a chain base's pretraining block, else what its config allows
    base_context = ((base_art.params.get("config") or {}).get("preset") or {}).get("block_size") if base_art else None
    if base_context is None:
        try:
            base_context = json.loads((Path(base_path) / "config.json").read_text(encoding="utf-8")).get(
                "max_position_embeddings")
        except (OSError, ValueError):
            base_context = None
    if base_context and cfg.max_length > base_context:
        em.emit("warning", message=f"max_length {cfg.max_length} is longer than the {base_context} tokens the base "
                f"model was trained on: positions {base_context}–{cfg.max_length - 1} were never trained (set "
                f"cfg.max_length ≤ {base_context})")
    rows, enc_info = encode_all(tok, convs, cfg.max_length, keys)
    enc_info = {**enc_info, "max_length": cfg.max_length, "base_context": base_context}
    train_rows, eval_rows, split_info = split_eval(rows, keys, cfg.eval_fraction, cfg.seed)
    if split_info.get("note"):
        em.emit("warning", message=split_info["note"])
    mean_len = sum(len(r["input_ids"]) for r in train_rows) / max(1, len(train_rows))
    tokens_per_step = int(mean_len * cfg.batch_size * cfg.grad_accum)
    em.emit("data", train=len(train_rows), eval=len(eval_rows), mean_tokens=round(mean_len, 1), **enc_info,
            **{k: v for k, v in split_info.items() if k != "note"})

    t0 = time.perf_counter()
    model = load_base(base_path, cfg.method, trust_remote_code=cfg.trust_remote_code)
    if cfg.method in ("lora", "qlora"):
        model = wrap_peft(model, cfg)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    em.emit("model", method=cfg.method, trainable=trainable, total=total)

    chat = HFModel(model, tok, name="sft")
    heldout = load_sft_data(ws, "selfcog_heldout")
    probe = [h["prompt"] for h in heldout[:1] + heldout[-1:]] + list(CONTROL_PROMPTS)
    name = cfg.data.assistant_name

    selfcog_curve: list[dict] = []  # held-out self-cognition accuracy at each sample, live in the panel

    def sample_fn(m):
        # the probe prompts and every held-out paraphrase (never trained on), decoded together
        asked = list(dict.fromkeys(probe + [h["prompt"] for h in heldout]))
        every = dict(zip(asked, chat.replies(asked, cfg.sample_tokens)))
        answers = {p: every[p] for p in probe}
        if heldout:  # scored as at the end (the name in the answer)
            ok = sum(h["expect"] in every[h["prompt"]] for h in heldout)
            selfcog_curve.append({"step": trainer.state.global_step, "acc": round(ok / len(heldout), 4)})
            answers[f"自我认知 held-out self-cognition ({len(heldout)})"] = f"{ok}/{len(heldout)} ({ok / len(heldout):.0%})"
        collapsed = [p for p in CONTROL_PROMPTS if name in answers[p]]
        if len(collapsed) >= max(1, len(CONTROL_PROMPTS) // 2):
            em.emit("warning", message=f"{len(collapsed)} of {len(CONTROL_PROMPTS)} unrelated prompts are answered with "
                    f"the self-introduction ({name}): the model is over-fitting the self-cognition data — "
                    "fewer epochs, a lower learning rate or fewer repeats (data.self_repeat)")
        return answers

    out = run_dir(ws)
    ckpt = get_last_checkpoint(str(out)) if resume and out.is_dir() else None
    if resume and ckpt is None:
        from ..errors import MissingInput

        raise MissingInput(f"nothing to resume: no checkpoint in {out}; start a new run",
                           zh=f"没有可以继续的训练：{out} 中没有检查点；请开始新的训练")
    if not resume and out.exists():
        shutil.rmtree(out)
    cuda = torch.cuda.is_available()
    # QLoRA on CPU computes in fp32 (bitsandbytes' CPU 4-bit path): no autocast there
    numerics = resolve(False if (cfg.method == "qlora" and not cuda) else cfg.bf16, "cuda" if cuda else "cpu")
    em.emit("numerics", **numerics.to_dict(), summary=numerics.summary())
    args = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum, learning_rate=cfg.learning_rate, lr_scheduler_type="cosine",
        warmup_steps=cfg.warmup_ratio, num_train_epochs=cfg.epochs, max_steps=cfg.max_steps,
        weight_decay=cfg.weight_decay, max_grad_norm=1.0, logging_steps=cfg.log_every, logging_first_step=True,
        eval_strategy="steps" if cfg.sample_every else "no", eval_steps=cfg.sample_every or None, save_strategy="steps", save_steps=cfg.save_every,
        save_total_limit=2, report_to="none", use_cpu=not cuda, bf16=numerics.bf16, fp16=numerics.fp16,
        dataloader_num_workers=0, seed=cfg.seed, disable_tqdm=not cfg.progress_bar, remove_unused_columns=False,
        train_sampling_strategy="group_by_length", dataloader_pin_memory=cuda,
    )
    # the recipe's steps: what a fixed-step run makes, and a budgeted run's shape (its warmup share, its points)
    per_epoch = math.ceil(len(train_rows) / (cfg.batch_size * cfg.grad_accum))
    recipe_steps = cfg.max_steps if cfg.max_steps > 0 else max(1, math.ceil(per_epoch * cfg.epochs))
    if cfg.budget_s:  # a ceiling only: the budget's plan decides where the run ends
        args.max_steps = recipe_steps * CEILING
    cb = trainer_callback(em, tokens_per_step=tokens_per_step, stop=stop, sample_fn=sample_fn,
                          sample_every=cfg.sample_every)
    trainer = Trainer(model=model, args=args, train_dataset=train_rows, eval_dataset=eval_rows,
                      data_collator=Collator(tok.eos_token_id, numerics.pad_multiple), callbacks=[cb])
    budget = None
    if cfg.budget_s:
        points = recipe_steps // cfg.sample_every if cfg.sample_every else 0
        budget = for_stage(cfg.budget_s, em, resume_from=ckpt, guess_steps=recipe_steps,
                           warmup_ratio=cfg.warmup_ratio, evals=points, samples=points,
                           saves=max(1, recipe_steps // cfg.save_every), max_steps=args.max_steps,
                           min_steps=floor_steps(cfg.min_steps, recipe_steps), followers=[cb])
        trainer.add_callback(budget)  # after the event bridge: its step times include the bridge's samples
    if stop is not None:
        stop.clear()
    t_train = train_timed(trainer, budget, resume_from=ckpt)
    state = trainer.state
    stopped = cb.stopped and state.global_step < state.max_steps
    if not any("eval_loss" in h and h.get("step") == state.global_step for h in state.log_history):
        trainer.evaluate()
    memory = training_memory(model, trainer.optimizer)
    # accelerate wrapped forward() in bf16 autocast for training: take the plain fp32 model back,
    # or every later answer (and an in-memory merge) is computed in bf16
    model = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)
    chat.model = model
    seconds = time.perf_counter() - t0
    acc, score_rows, control, collapse = None, [], {}, None
    if score or save:
        acc, score_rows = selfcog_score(chat, heldout, cfg.sample_tokens)
        collapse, control = collapse_rate(chat, name, max_new_tokens=cfg.sample_tokens)
    history = list(state.log_history)
    evals = [h for h in history if "eval_loss" in h]
    trains = [h for h in history if "loss" in h]
    metrics = {
        "method": cfg.method, "steps": state.global_step, "max_steps": state.max_steps, "stopped": stopped,
        "train_loss": trains[-1]["loss"] if trains else None, "eval_loss": evals[-1]["eval_loss"] if evals else None,
        "eval_loss_first": evals[0]["eval_loss"] if evals else None,
        "selfcog_heldout_acc": acc, "selfcog_curve": selfcog_curve, "control_collapse": collapse, "trainable_parameters": trainable,
        "parameters": total, "memory": memory, "seconds": round(seconds, 1), "precision": numerics.dtype,
        "precision_reason": numerics.reason, **enc_info,
    }
    if cfg.method == "full":  # model FLOP utilisation (6·N + attention per token; LoRA's backward differs)
        rate = train_rate(history, tokens_per_step)
        metrics.update(tokens_per_s=round(rate, 1), **utilisation(rate, train_flops_per_token(model, mean_len), numerics))
    metrics.update(budget_metrics(budget.plan if budget else None, steps=state.global_step, train_seconds=t_train))
    em.emit("selfcheck", selfcog=acc, rows=score_rows, collapse=collapse, control=control)
    art = None
    if save:
        art = _save(ws, cfg, model, tok, base_path, base_art, data_art, history, metrics, score_rows, control)
    em.emit("done", **{k: v for k, v in metrics.items() if k != "memory"})
    return SFTResult(state.global_step, state.max_steps, stopped, history, metrics, art, model, memory=memory)


def _save(ws, cfg, model, tok, base_path, base_art, data_art, history, metrics, score_rows, control) -> Artifact:
    parents = [a for a in (base_art, data_art) if a is not None]
    params = {"config": cfg.to_dict()}
    if cfg.method in ("lora", "qlora"):
        with ws.write(ADAPTER, kind="adapter", stage="finetune", parents=parents, params=params) as w:
            model.save_pretrained(str(w.path))
            w.metrics.update({k: metrics[k] for k in ("method", "trainable_parameters", "steps", "eval_loss")})
        adapter = ws.get(ADAPTER)
        merged = merge_adapter(base_path, adapter.path, trust_remote_code=cfg.trust_remote_code)
        parents = parents + [adapter]
    else:
        merged = model
    merged = merged.float()  # saved in fp32 (a no-op on CPU; a bf16 model on CUDA), what the converter expects
    with ws.write(MODEL, kind="model", stage="finetune", parents=parents, params=params) as w:
        gc = merged.generation_config
        from ..models.hf import stop_ids
        from ..models.tokenizer import save_tokenizer

        gc.eos_token_id = stop_ids(tok)
        gc.pad_token_id = tok.eos_token_id
        merged.save_pretrained(str(w.path))
        spm = Path(base_path) / "tokenizer.model"
        save_tokenizer(tok, w.path, spm if spm.is_file() else None)
        (w.path / "curve.json").write_text(json.dumps(history, indent=1), encoding="utf-8")
        (w.path / "selfcheck.json").write_text(json.dumps({"selfcog": score_rows, "control": control},
                                                          ensure_ascii=False, indent=1), encoding="utf-8")
        (w.path / "sft_config.json").write_text(json.dumps(cfg.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")
        (w.path / "xtuner_config.py").write_text(xtuner_config(cfg), encoding="utf-8")
        with open(w.path / XTUNER_DATA, "w", encoding="utf-8") as f:  # its data, in XTuner's conversation format
            for row in xtuner_conversations(tok, load_sft_data(ws, "train")):
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        w.metrics.update(metrics)
    return ws.get(MODEL)
