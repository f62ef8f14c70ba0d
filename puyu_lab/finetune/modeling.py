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


def _from_pretrained(path, trust_remote_code: bool, **kw):
    """``AutoModelForCausalLM.from_pretrained`` with one clear error naming the model."""
    from transformers import AutoModelForCausalLM

    from ..errors import InputError

    try:
        return AutoModelForCausalLM.from_pretrained(str(path), trust_remote_code=trust_remote_code, **kw)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0][:240] if str(exc).strip() else type(exc).__name__
        if "trust_remote_code" in str(exc):
            fix = ("it ships its own modelling code (InternLM2 does): set trust_remote_code=True in the config if you "
                   "trust its source")
            fix_zh = "它自带建模代码（InternLM2 就是这样）：如果信任它的来源，请在配置中设置 trust_remote_code=True"
        elif not Path(str(path)).is_dir():
            fix = ("it is neither a model directory nor a hub id this machine can fetch (offline here): give the "
                   "checkpoint's local directory")
            fix_zh = "它既不是模型目录，也不是这台机器能下载的 Hub 模型名（这里处于离线状态）：请给出检查点的本地目录"
        else:
            fix = "the directory needs config.json and its weights (*.safetensors) as transformers saves them"
            fix_zh = "该目录需要有 config.json 和权重文件（*.safetensors），即 transformers 保存出来的样子"
        raise InputError(f"model {path}: cannot load it ({first}); {fix}",
                         zh=f"模型 {path}：无法加载（{first}）；{fix_zh}") from None


def load_base(path, method: str, *, trainable: bool = True, trust_remote_code: bool = False):
    """The base model as the method needs it: fp32 (full / LoRA) or 4-bit nf4 (QLoRA); the dtype is what
    the device supports (bf16 where native, else fp16 on CUDA, fp32 on CPU)."""
    import torch

    from ..numerics import choose

    cuda = torch.cuda.is_available()
    half = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(choose("cuda").dtype) if cuda else None
    if method == "qlora":
        from transformers import BitsAndBytesConfig

        q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=half or torch.float32)
        return _from_pretrained(path, trust_remote_code, quantization_config=q,
                                device_map={"": 0} if cuda else {"": "cpu"})
    dtype = half if (half is not None and method == "lora") else torch.float32
    model = _from_pretrained(path, trust_remote_code, dtype=dtype)
    return model.to("cuda") if cuda else model


def linear_targets(model, *, output_layer: bool = True) -> list[str]:
    """The model's own linear layers by their leaf names (what peft's ``"all-linear"`` picks), with the
    output layer (``lm_head``, InternLM2's ``output``) when ``output_layer``; 4-bit and 8-bit
    bitsandbytes layers count (they subclass ``nn.Linear``)."""
    import torch.nn as nn

    out = model.get_output_embeddings()
    names = {name.rsplit(".", 1)[-1] for name, mod in model.named_modules()
             if isinstance(mod, nn.Linear) and (output_layer or mod is not out)}
    if not names:
        raise ValueError(f"{type(model).__name__} has no linear layers for LoRA to adapt")
    return sorted(names)


def wrap_peft(model, cfg: SFTConfig):
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if cfg.method == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    targets = (linear_targets(model, output_layer=cfg.lora_output_layer) if cfg.target_modules == "all-linear"
               else list(cfg.target_modules))
    lc = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                    target_modules=targets, modules_to_save=list(cfg.modules_to_save) or None,
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


def merge_adapter(base_path, adapter_path, *, trust_remote_code: bool = False):
    """The full-precision base with the adapter folded in (``merge_and_unload``). A QLoRA adapter
    is merged into the *unquantized* base, as XTuner's ``merge`` does."""
    from peft import PeftModel

    base = load_base(base_path, "full", trust_remote_code=trust_remote_code)
    return PeftModel.from_pretrained(base, str(adapter_path)).merge_and_unload()
