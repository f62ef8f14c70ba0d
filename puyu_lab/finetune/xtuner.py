"""The same fine-tune as an XTuner (mmengine) config, for a real InternLM2 model on a GPU."""
from __future__ import annotations

from pathlib import Path

from ..contracts.dialogs import CONTROL_PROMPTS
from .config import SFTConfig


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
