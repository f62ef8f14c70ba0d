"""Supervised fine-tuning (XTuner-style): full, LoRA (peft) or QLoRA (bitsandbytes nf4).

``prepare_data`` writes the ``sft/data`` artifact (the mixture and its held-out sets);
``finetune`` trains on it from ``model/base`` with loss on assistant tokens only, answers fixed
evaluation prompts every N steps (like XTuner's ``EvaluateChatHook``) and warns when unrelated
prompts collapse into the self-introduction. It keeps the adapter (``adapter/sft``) and the
merged full model (``model/sft``, with the chat template) and an XTuner config summary.
"""
from __future__ import annotations

import json
import random
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

from ..artifacts import load_sft_data  # noqa: F401 (the reader of what this stage writes)
from ..errors import InputError
from ..events import Emitter, Event, StopFlag
from ..numerics import resolve
from ..workspace import Artifact, Workspace, stage_entry
from .data import CONTROL_PROMPTS, build_mixture, load_custom
from ..models.template import IGNORE, encode_chat, install_template
from .config import ALL_LINEAR, LORA_TARGETS, METHODS, SFTConfig, config_for_profile  # noqa: F401 (importable from here too)

SFT_DATA = "sft/data"
ADAPTER = "adapter/sft"
MODEL = "model/sft"


# ---- data ---------------------------------------------------------------------------------------
@stage_entry("finetune")
def prepare_data(ws: Workspace, cfg: SFTConfig | None = None, *, corpus: str = "corpus/clean") -> Artifact:
    """Build the SFT mixture from the learner's settings and ``corpus/clean`` → ``sft/data``."""
    from ..artifacts import load_corpus

    cfg = cfg or SFTConfig()
    src = ws.get(corpus)
    reviews = [r for r in load_corpus(ws, "train", corpus).to_list() if r.get("label")]
    custom, bad = ([], [])
    if cfg.custom_data:
        custom, bad = load_custom(cfg.custom_data)
    mix = build_mixture(cfg.data, reviews, custom)
    kinds: dict[str, int] = {}
    for ex in mix["train"]:
        kinds[ex["kind"]] = kinds.get(ex["kind"], 0) + 1
    with ws.write(SFT_DATA, kind="dataset", stage="finetune", parents=[src],
                  params={"data": asdict(cfg.data), "custom_data": cfg.custom_data}) as w:
        for name, rows in mix.items():
            with open(w.path / f"{name}.jsonl", "w", encoding="utf-8") as f:
                for r in rows:
                    f.write(json.dumps(r, ensure_ascii=False) + "\n")
        if bad:
            (w.path / "custom_errors.txt").write_text(
                "".join(f"{cfg.custom_data}:{b.line}: {b.reason}\n" for b in bad), encoding="utf-8")
        w.metrics.update({"train": len(mix["train"]), **{f"train_{k}": v for k, v in sorted(kinds.items())},
                          "selfcog_heldout": len(mix["selfcog_heldout"]),
                          "arithmetic_heldout": len(mix["arithmetic_heldout"]), "custom_rejected": len(bad),
                          "assistant_name": cfg.data.assistant_name})
    return ws.get(SFT_DATA)


class Collator:
    """Pad a batch to its longest sequence; padding is never trained."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, batch):
        import torch

        n = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), n), self.pad_id, dtype=torch.long)
        labels = torch.full((len(batch), n), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(batch), n), dtype=torch.long)
        for i, b in enumerate(batch):
            k = len(b["input_ids"])
            ids[i, :k] = torch.tensor(b["input_ids"])
            labels[i, :k] = torch.tensor(b["labels"])
            mask[i, :k] = 1
        # the model shifts labels itself: labels[t] is predicted from ids[:t]
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def conversation_key(messages: list[dict]) -> str:
    """A conversation's normalised text (roles, names, contents with whitespace collapsed and case
    folded): two conversations with the same key are the same example."""
    return json.dumps([("environment" if m.get("role") == "tool" else m.get("role"), m.get("name") or "",
                        " ".join(str(m.get("content", "")).split()).casefold()) for m in messages],
                      ensure_ascii=False)


def encode_all(tok, convs: list[dict], max_length: int, keys_out: list | None = None) -> tuple[list[dict], dict]:
    """Encode conversations; one longer than ``max_length`` loses whole turns from its end (so every
    trained assistant turn still ends in ``<|im_end|>``), never half a turn. ``keys_out`` (a list)
    receives each kept row's :func:`conversation_key`."""
    rows, truncated, untrained = [], 0, 0
    for c in convs:
        msgs = list(c["messages"])
        e = encode_chat(tok, msgs, max_length)
        if e.truncated:
            truncated += 1
            while e.truncated and len(msgs) > 2:
                msgs = msgs[:-1]
                while msgs and msgs[-1]["role"] != "assistant":
                    msgs = msgs[:-1]
                e = encode_chat(tok, msgs, max_length) if msgs else e
        if e.truncated or not any(x != IGNORE for x in e.labels):
            untrained += 1
            continue
        rows.append({"input_ids": e.input_ids, "labels": e.labels})
        if keys_out is not None:
            keys_out.append(conversation_key(c["messages"]))
    return rows, {"conversations": len(convs), "truncated": truncated, "dropped_untrained": untrained}


def split_eval(rows: list[dict], keys: list[str], eval_fraction: float, seed: int) -> tuple[list, list, dict]:
    """Held-out rows by *unique conversation*: repeated examples (self-cognition is repeated
    ``data.self_repeat`` times) land on one side only, so the held-out loss never measures a
    conversation the model trained on. The eval side holds one copy of each of its conversations;
    every copy of them leaves the training side. At least one conversation is always left to train on."""
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    unique = len(set(keys))
    if unique < 2:
        raise InputError(f"only {unique} distinct SFT conversation(s) left after encoding ({len(rows)} rows): "
                         "fine-tuning needs at least 2 — one to train on and one held out for the loss; add data "
                         "(custom_data, or the built-in mixture's settings in cfg.data)")
    n_eval = max(8, int(unique * eval_fraction))
    note = None
    if n_eval > unique - 1:
        n_eval = unique - 1
        note = (f"only {unique} distinct conversations: {n_eval} held out for the loss, 1 left to train on — "
                "add data for a meaningful held-out loss")
    eval_keys: set[str] = set()
    eval_rows = []
    for i in order:
        if len(eval_keys) == n_eval:
            break
        if keys[i] not in eval_keys:
            eval_keys.add(keys[i])
            eval_rows.append(rows[i])
    train_rows = [rows[i] for i in order if keys[i] not in eval_keys]
    info = {"eval_conversations": len(eval_rows), "train_unique_conversations": unique - len(eval_rows),
            "eval_copies_dropped": sum(k in eval_keys for k in keys) - len(eval_rows)}
    if note:
        info["note"] = note
    return train_rows, eval_rows, info


# ---- models -------------------------------------------------------------------------------------
def resolve_base(ws: Workspace, base: str) -> tuple[Path | str, Artifact | None]:
    p = Path(base)
    if p.is_dir():
        return p, None
    if base.startswith("model/"):
        art = ws.get(base)  # a missing artifact names the lab that makes it
        return art.path, art
    return base, None  # a hub id (gpu profile, when online)


def load_base(path, method: str, *, trainable: bool = True):
    """The base model as the method needs it: fp32 (full / LoRA) or 4-bit nf4 (QLoRA)."""
    import torch
    from transformers import AutoModelForCausalLM

    from ..numerics import choose

    cuda = torch.cuda.is_available()
    half = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(choose("cuda").dtype) if cuda else None
    if method == "qlora":
        from transformers import BitsAndBytesConfig

        q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=half or torch.float32)
        return AutoModelForCausalLM.from_pretrained(str(path), quantization_config=q,
                                                    device_map={"": 0} if cuda else {"": "cpu"})
    dtype = half if (half is not None and method == "lora") else torch.float32
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype)
    return model.to("cuda") if cuda else model


def wrap_peft(model, cfg: SFTConfig):
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if cfg.method == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    lc = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                    target_modules=list(cfg.target_modules), modules_to_save=list(cfg.modules_to_save) or None,
                    task_type="CAUSAL_LM")
    return get_peft_model(model, lc)


def training_memory(model, optimizer=None) -> dict:
    """Bytes held by the training state, counted from the tensors themselves: weights (4-bit
    weights count as their packed storage), gradients of trainable weights, optimizer state."""
    import torch

    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    weights += sum(b.numel() * b.element_size() for b in model.buffers())
    grads = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    opt = 0
    if optimizer is not None:
        for st in optimizer.state.values():
            opt += sum(v.numel() * v.element_size() for v in st.values() if torch.is_tensor(v))
    out = {"weights_mb": weights / 2**20, "grads_mb": grads / 2**20, "optimizer_mb": opt / 2**20}
    out["total_mb"] = out["weights_mb"] + out["grads_mb"] + out["optimizer_mb"]
    if torch.cuda.is_available():
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return {k: round(v, 2) for k, v in out.items()}


def merge_adapter(base_path, adapter_path):
    """The full-precision base with the adapter folded in (``merge_and_unload``). A QLoRA adapter
    is merged into the *unquantized* base, as XTuner's ``merge`` does."""
    from peft import PeftModel

    base = load_base(base_path, "full")
    return PeftModel.from_pretrained(base, str(adapter_path)).merge_and_unload()


# ---- evaluation during and after training ---------------------------------------------------------
def selfcog_score(chat, heldout: list[dict], max_new_tokens: int = 40) -> tuple[float, list[dict]]:
    """Share of held-out paraphrases answered with the assistant's name."""
    rows = []
    for h in heldout:
        a = chat.reply([{"role": "user", "content": h["prompt"]}], max_new_tokens)
        rows.append({"prompt": h["prompt"], "answer": a, "ok": h["expect"] in a})
    return (sum(r["ok"] for r in rows) / len(rows) if rows else 0.0), rows


def collapse_rate(chat, name: str, prompts=CONTROL_PROMPTS, max_new_tokens: int = 40) -> tuple[float, dict]:
    """Share of unrelated prompts whose answer is the self-introduction (over-fitting)."""
    answers = {p: chat.reply([{"role": "user", "content": p}], max_new_tokens) for p in prompts}
    return sum(name in a for a in answers.values()) / len(prompts), answers


# ---- the run --------------------------------------------------------------------------------------
@dataclass
class SFTResult:
    steps: int
    max_steps: int
    stopped: bool
    history: list[dict]
    metrics: dict
    artifact: Artifact | None
    memory: dict
    model: object = None  # the trained model (a peft model for LoRA / QLoRA)


def run_dir(ws: Workspace) -> Path:
    return ws.root / "runs" / "finetune"


@stage_entry("finetune")
def finetune(ws: Workspace, cfg: SFTConfig | None = None, *, on_event: Callable[[Event], None] | None = None,
             stop: StopFlag | None = None, resume: bool = False, save: bool = True, score: bool = True) -> SFTResult:
    """Fine-tune ``cfg.base`` on ``sft/data`` (built first if missing). With ``save`` the adapter and
    the merged model become artifacts; with ``score`` the held-out self-cognition questions are
    answered at the end. Short comparisons pass ``save=False, score=False``."""
    import torch
    from transformers import Trainer, TrainingArguments, set_seed
    from transformers.trainer_utils import get_last_checkpoint

    from ..models.hf import HFModel
    from ..models.tokenizer import load_tokenizer
    from ..events import trainer_callback

    cfg = replace(cfg or SFTConfig())
    em = Emitter("finetune", on_event)
    base_path, base_art = resolve_base(ws, cfg.base)
    data_art = ws.get(SFT_DATA) if ws.exists(SFT_DATA) else None
    if data_art is None or data_art.params.get("data") != asdict(cfg.data) or \
            data_art.params.get("custom_data") != cfg.custom_data:
        data_art = prepare_data(ws, cfg)  # missing, or built with other settings (another name …)
    tok = load_tokenizer(base_path)
    install_template(tok)
    set_seed(cfg.seed)
    convs = load_sft_data(ws, "train")
    keys: list[str] = []
    rows, enc_info = encode_all(tok, convs, cfg.max_length, keys)
    train_rows, eval_rows, split_info = split_eval(rows, keys, cfg.eval_fraction, cfg.seed)
    if split_info.get("note"):
        em.emit("warning", message=split_info["note"])
    mean_len = sum(len(r["input_ids"]) for r in train_rows) / max(1, len(train_rows))
    tokens_per_step = int(mean_len * cfg.batch_size * cfg.grad_accum)
    em.emit("data", train=len(train_rows), eval=len(eval_rows), mean_tokens=round(mean_len, 1), **enc_info,
            **{k: v for k, v in split_info.items() if k != "note"})

    t0 = time.perf_counter()
    model = load_base(base_path, cfg.method)
    if cfg.method in ("lora", "qlora"):
        model = wrap_peft(model, cfg)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    em.emit("model", method=cfg.method, trainable=trainable, total=total)

    chat = HFModel(model, tok, name="sft")
    heldout = load_sft_data(ws, "selfcog_heldout")
    probe = [h["prompt"] for h in heldout[:1] + heldout[-1:]] + list(CONTROL_PROMPTS)
    name = cfg.data.assistant_name

    def sample_fn(m):
        answers = {p: chat.reply([{"role": "user", "content": p}], cfg.sample_tokens) for p in probe}
        collapsed = [p for p in CONTROL_PROMPTS if name in answers[p]]
        if len(collapsed) >= max(1, len(CONTROL_PROMPTS) // 2):
            em.emit("warning", message=f"{len(collapsed)} of {len(CONTROL_PROMPTS)} unrelated prompts are answered with "
                    f"the self-introduction ({name}): the model is over-fitting the self-cognition data — "
                    "fewer epochs, a lower learning rate or fewer repeats (data.self_repeat)")
        return answers

    out = run_dir(ws)
    ckpt = get_last_checkpoint(str(out)) if resume and out.is_dir() else None
    if resume and ckpt is None:
        raise FileNotFoundError(f"nothing to resume: no checkpoint in {out}; start a new run")
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
    cb = trainer_callback(em, tokens_per_step=tokens_per_step, stop=stop, sample_fn=sample_fn,
                          sample_every=cfg.sample_every)
    trainer = Trainer(model=model, args=args, train_dataset=train_rows, eval_dataset=eval_rows,
                      data_collator=Collator(tok.eos_token_id), callbacks=[cb])
    if stop is not None:
        stop.clear()
    trainer.train(resume_from_checkpoint=ckpt)
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
        "selfcog_heldout_acc": acc, "control_collapse": collapse, "trainable_parameters": trainable,
        "parameters": total, "memory": memory, "seconds": round(seconds, 1), "precision": numerics.dtype,
        "precision_reason": numerics.reason, **enc_info,
    }
    em.emit("selfcheck", selfcog=acc, rows=score_rows, collapse=collapse, control=control)
    art = None
    if save:
        art = _save(ws, cfg, model, tok, base_path, base_art, data_art, history, metrics, score_rows, control)
    em.emit("done", **{k: v for k, v in metrics.items() if k != "memory"})
    return SFTResult(state.global_step, state.max_steps, stopped, history, metrics, art, memory, model)


def _save(ws, cfg, model, tok, base_path, base_art, data_art, history, metrics, score_rows, control) -> Artifact:
    parents = [a for a in (base_art, data_art) if a is not None]
    params = {"config": cfg.to_dict()}
    if cfg.method in ("lora", "qlora"):
        with ws.write(ADAPTER, kind="adapter", stage="finetune", parents=parents, params=params) as w:
            model.save_pretrained(str(w.path))
            w.metrics.update({k: metrics[k] for k in ("method", "trainable_parameters", "steps", "eval_loss")})
        adapter = ws.get(ADAPTER)
        merged = merge_adapter(base_path, adapter.path)
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
        w.metrics.update(metrics)
    return ws.get(MODEL)


def xtuner_config(cfg: SFTConfig, gpu_model: str = "internlm/internlm2-chat-1_8b") -> str:
    """The same run written as an XTuner config (``xtuner train this.py``) on a real model."""
    lora = "" if cfg.method == "full" else f"""
    lora=dict(type=LoraConfig, r={cfg.lora_r}, lora_alpha={cfg.lora_alpha}, lora_dropout={cfg.lora_dropout},
              bias='none', task_type='CAUSAL_LM'),"""
    quant = "" if cfg.method != "qlora" else """
        quantization_config=dict(type=BitsAndBytesConfig, load_in_4bit=True, bnb_4bit_quant_type='nf4',
                                 bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.float16),"""
    return f'''# XTuner config summary of a puyu-lab SFT run ({cfg.method}).
# On a GPU: put the sft/data train.jsonl beside this file, then `xtuner train {Path("xtuner_config.py")}`
# — or repeat it here with `puyu-lab finetune train --profile gpu --config sft_config.json`.
import torch
from datasets import load_dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig
from xtuner.dataset import process_hf_dataset
from xtuner.dataset.map_fns import openai_map_fn, template_map_fn_factory
from xtuner.model import SupervisedFinetune
from xtuner.utils import PROMPT_TEMPLATE

pretrained_model_name_or_path = {gpu_model!r}
data_files = ['train.jsonl']  # {{"messages": [...]}} per line (OpenAI format)
prompt_template = PROMPT_TEMPLATE.internlm2_chat
max_length = {max(cfg.max_length, 2048)}
pack_to_max_length = True
batch_size = {cfg.batch_size}
accumulative_counts = {cfg.grad_accum}
max_epochs = {cfg.epochs:g}
lr = {2e-4 if cfg.method != "full" else 2e-5}  # puyu-lab's tiny model used {cfg.learning_rate:g}
warmup_ratio = {cfg.warmup_ratio}
evaluation_freq = {cfg.sample_every}
evaluation_inputs = {[CONTROL_PROMPTS[0], "请介绍一下你自己", "Who are you?"]!r}

tokenizer = dict(type=AutoTokenizer.from_pretrained, pretrained_model_name_or_path=pretrained_model_name_or_path,
                 trust_remote_code=True, padding_side='right')
model = dict(
    type=SupervisedFinetune,
    llm=dict(type=AutoModelForCausalLM.from_pretrained, pretrained_model_name_or_path=pretrained_model_name_or_path,
             trust_remote_code=True, torch_dtype=torch.float16,{quant}
    ),{lora}
)
train_dataset = dict(type=process_hf_dataset, dataset=dict(type=load_dataset, path='json', data_files=data_files),
                     tokenizer=tokenizer, max_length=max_length, dataset_map_fn=openai_map_fn,
                     template_map_fn=dict(type=template_map_fn_factory, template=prompt_template),
                     remove_unused_columns=True, shuffle_before_pack=True, pack_to_max_length=pack_to_max_length)
'''
