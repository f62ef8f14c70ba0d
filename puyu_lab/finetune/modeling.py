"""The model being fine-tuned: the base (a workspace artifact or a directory), loaded for full,
LoRA (peft) or QLoRA (bitsandbytes nf4) training; the adapter; merging; what training holds in memory."""
from __future__ import annotations

from pathlib import Path

from ..workspace import Artifact, Workspace
from .config import SFTConfig


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
