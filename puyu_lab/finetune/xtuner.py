"""The same fine-tune as an XTuner (mmengine) config for a real InternLM2 model on a GPU, and its data.

:func:`xtuner_config` writes a config with every top-level field of XTuner's own
``custom_dataset/sft/internlm/internlm2_chat_1_8b_qlora_custom_sft_e1.py`` (XTuner 0.2.0): settings,
tokenizer and model (``SupervisedFinetune``, bitsandbytes nf4 for QLoRA, the LoRA config), the dataset
and dataloader, ``optim_wrapper``, ``param_scheduler``, ``train_cfg``, hooks and runtime.

The data goes beside it as ``xtuner_train.jsonl`` in XTuner's *conversation* format, already rendered in
the InternLM2 chat format (:func:`xtuner_conversations`): XTuner's ``openai_map_fn`` refuses the
``environment`` role our tool conversations use, so the config passes ``dataset_map_fn=None`` and
``template_map_fn=None`` and XTuner's ``encode_fn`` only tokenizes — each turn's ``input`` without loss,
its ``output`` (the answer and its ``<|im_end|>``) with loss, no EOS appended (``need_eos_token``), BOS
once at the start: the same tokens and labels our own trainer uses (tested). Packing stays off, as in our
run. XTuner itself pins transformers 4.48, so it is not installed here: the config is checked with
mmengine's loader, not trained.
"""
from __future__ import annotations

from ..contracts.dialogs import CONTROL_PROMPTS
from ..models.template import assistant_spans
from .config import SFTConfig

XTUNER_DATA = "xtuner_train.jsonl"


def xtuner_conversations(tok, convs: list[dict]) -> list[dict]:
    """Each conversation as XTuner's ``{"conversation": [{"input", "output", "need_eos_token"}]}``, rendered
    with ``tok``'s chat template: ``input`` is everything since the last answer (turn markers, user,
    system and environment turns), ``output`` the answer through ``<|im_end|>``."""
    out = []
    for c in convs:
        text, spans = assistant_spans(tok, c["messages"])
        bos = tok.bos_token or ""
        start = len(bos) if bos and text.startswith(bos) else 0  # XTuner's encode_fn adds BOS itself
        turns, prev = [], start
        for a, b in spans:
            turns.append({"input": text[prev:a], "output": text[a:b], "need_eos_token": False})
            prev = b
        if turns:
            out.append({"conversation": turns})
    return out


def xtuner_config(cfg: SFTConfig, gpu_model: str = "internlm/internlm2-chat-1_8b") -> str:
    """The same run written as an XTuner config (``xtuner train xtuner_config.py`` beside its data)."""
    method = cfg.method
    quant = "" if method != "qlora" else """
        quantization_config=dict(
            type=BitsAndBytesConfig,
            load_in_4bit=True,
            load_in_8bit=False,
            llm_int8_threshold=6.0,
            llm_int8_has_fp16_weight=False,
            bnb_4bit_compute_dtype=torch.float16,
            bnb_4bit_use_double_quant=True,
            bnb_4bit_quant_type="nf4",
        ),"""
    lora = "" if method == "full" else f"""
    lora=dict(
        type=LoraConfig,
        r={cfg.lora_r},
        lora_alpha={cfg.lora_alpha},
        lora_dropout={cfg.lora_dropout},
        bias="none",
        task_type="CAUSAL_LM",
    ),"""
    lr = 2e-4 if method != "full" else 2e-5
    return f'''# An XTuner config of this puyu-lab SFT run ({method}), in the shape of XTuner's own
# custom_dataset/sft/internlm/internlm2_chat_1_8b_qlora_custom_sft_e1.py, for a real model on a GPU.
# In this directory (its data, {XTUNER_DATA}, is beside it): `xtuner train xtuner_config.py`.
# The data is already in the InternLM2 chat format (tool calls and environment turns included), so no
# map function or template is applied; puyu-lab's own run: sft_config.json.
import torch
from datasets import load_dataset
from mmengine.dataset import DefaultSampler
from mmengine.hooks import (
    CheckpointHook,
    DistSamplerSeedHook,
    IterTimerHook,
    LoggerHook,
    ParamSchedulerHook,
)
from mmengine.optim import AmpOptimWrapper, CosineAnnealingLR, LinearLR
from peft import LoraConfig
from torch.optim import AdamW
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

from xtuner.dataset import process_hf_dataset
from xtuner.dataset.collate_fns import default_collate_fn
from xtuner.engine.hooks import (
    DatasetInfoHook,
    EvaluateChatHook,
    VarlenAttnArgsToMessageHubHook,
)
from xtuner.engine.runner import TrainLoop
from xtuner.model import SupervisedFinetune
from xtuner.utils import PROMPT_TEMPLATE

#######################################################################
#                          PART 1  Settings                           #
#######################################################################
pretrained_model_name_or_path = {gpu_model!r}
use_varlen_attn = False

data_files = [{XTUNER_DATA!r}]
prompt_template = PROMPT_TEMPLATE.internlm2_chat  # for the chat hook; the data is rendered already
max_length = {max(cfg.max_length, 2048)}
pack_to_max_length = False  # puyu-lab's run does not pack

batch_size = {cfg.batch_size}  # per device
accumulative_counts = {cfg.grad_accum}
dataloader_num_workers = 0
max_epochs = {cfg.epochs:g}
optim_type = AdamW
lr = {lr}  # puyu-lab's 5 M-parameter model used {cfg.learning_rate:g}
betas = (0.9, 0.999)
weight_decay = {cfg.weight_decay}
max_norm = 1
warmup_ratio = {cfg.warmup_ratio}

save_steps = {max(cfg.save_every, 1)}
save_total_limit = 2

evaluation_freq = {max(cfg.sample_every, 1)}
SYSTEM = ""
evaluation_inputs = {[CONTROL_PROMPTS[0], "请介绍一下你自己", "Who are you?"]!r}

#######################################################################
#                      PART 2  Model & Tokenizer                      #
#######################################################################
tokenizer = dict(
    type=AutoTokenizer.from_pretrained,
    pretrained_model_name_or_path=pretrained_model_name_or_path,
    trust_remote_code=True,
    padding_side="right",
)

model = dict(
    type=SupervisedFinetune,
    use_varlen_attn=use_varlen_attn,
    llm=dict(
        type=AutoModelForCausalLM.from_pretrained,
        pretrained_model_name_or_path=pretrained_model_name_or_path,
        trust_remote_code=True,
        torch_dtype=torch.float16,{quant}
    ),{lora}
)

#######################################################################
#                      PART 3  Dataset & Dataloader                   #
#######################################################################
train_dataset = dict(
    type=process_hf_dataset,
    dataset=dict(type=load_dataset, path="json", data_files=data_files),
    tokenizer=tokenizer,
    max_length=max_length,
    dataset_map_fn=None,  # already {{"conversation": [...]}}: openai_map_fn refuses the environment role
    template_map_fn=None,  # already in the InternLM2 chat format
    remove_unused_columns=True,
    shuffle_before_pack=True,
    pack_to_max_length=pack_to_max_length,
    use_varlen_attn=use_varlen_attn,
)

train_dataloader = dict(
    batch_size=batch_size,
    num_workers=dataloader_num_workers,
    dataset=train_dataset,
    sampler=dict(type=DefaultSampler, shuffle=True),
    collate_fn=dict(type=default_collate_fn, use_varlen_attn=use_varlen_attn),
)

#######################################################################
#                    PART 4  Scheduler & Optimizer                    #
#######################################################################
optim_wrapper = dict(
    type=AmpOptimWrapper,
    optimizer=dict(type=optim_type, lr=lr, betas=betas, weight_decay=weight_decay),
    clip_grad=dict(max_norm=max_norm, error_if_nonfinite=False),
    accumulative_counts=accumulative_counts,
    loss_scale="dynamic",
    dtype="float16",
)

param_scheduler = [
    dict(
        type=LinearLR,
        start_factor=1e-5,
        by_epoch=True,
        begin=0,
        end=warmup_ratio * max_epochs,
        convert_to_iter_based=True,
    ),
    dict(
        type=CosineAnnealingLR,
        eta_min=0.0,
        by_epoch=True,
        begin=warmup_ratio * max_epochs,
        end=max_epochs,
        convert_to_iter_based=True,
    ),
]

train_cfg = dict(type=TrainLoop, max_epochs=max_epochs)

#######################################################################
#                           PART 5  Runtime                           #
#######################################################################
custom_hooks = [
    dict(type=DatasetInfoHook, tokenizer=tokenizer),
    dict(
        type=EvaluateChatHook,
        tokenizer=tokenizer,
        every_n_iters=evaluation_freq,
        evaluation_inputs=evaluation_inputs,
        system=SYSTEM,
        prompt_template=prompt_template,
    ),
]

if use_varlen_attn:
    custom_hooks += [dict(type=VarlenAttnArgsToMessageHubHook)]

default_hooks = dict(
    timer=dict(type=IterTimerHook),
    logger=dict(type=LoggerHook, log_metric_by_epoch=False, interval=10),
    param_scheduler=dict(type=ParamSchedulerHook),
    checkpoint=dict(type=CheckpointHook, by_epoch=False, interval=save_steps, max_keep_ckpts=save_total_limit),
    sampler_seed=dict(type=DistSamplerSeedHook),
)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
    dist_cfg=dict(backend="nccl"),
)

visualizer = None
log_level = "INFO"
load_from = None
resume = False
randomness = dict(seed={cfg.seed}, deterministic=False)
log_processor = dict(by_epoch=False)
'''
