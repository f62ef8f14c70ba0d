"""The XTuner export: ``xtuner_config.py`` loads with mmengine and has every top-level field of XTuner's own
QLoRA custom-dataset config, and ``xtuner_train.jsonl`` — encoded as XTuner's ``encode_fn`` encodes a
conversation — gives exactly the tokens and labels puyu-lab's own trainer trains on (tool calls and
environment turns included, which XTuner's ``openai_map_fn`` would refuse)."""
from __future__ import annotations

import json

import pytest

# the top-level fields of XTuner 0.2.0's xtuner/configs/custom_dataset/sft/internlm/
# internlm2_chat_1_8b_qlora_custom_sft_e1.py (read from its wheel; XTuner pins transformers 4.48, so it is not
# installed here)
XTUNER_FIELDS = {
    "pretrained_model_name_or_path", "use_varlen_attn", "data_files", "prompt_template", "max_length",
    "pack_to_max_length", "batch_size", "accumulative_counts", "dataloader_num_workers", "max_epochs", "optim_type",
    "lr", "betas", "weight_decay", "max_norm", "warmup_ratio", "save_steps", "save_total_limit", "evaluation_freq",
    "SYSTEM", "evaluation_inputs", "tokenizer", "model", "train_dataset", "train_dataloader", "optim_wrapper",
    "param_scheduler", "train_cfg", "custom_hooks", "default_hooks", "env_cfg", "visualizer", "log_level",
    "load_from", "resume", "randomness", "log_processor",
}


def xtuner_encode(tok, conversation: list[dict]) -> tuple[list[int], list[int]]:
    """XTuner 0.2.0's ``xtuner.dataset.utils.encode_fn`` for text conversations, as it reads: BOS before the
    first input, each input without loss, each output with loss, EOS only when ``need_eos_token``."""
    bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
    ids, labels, needs_bos = [], [], True
    for turn in conversation:
        inp = tok.encode(turn["input"], add_special_tokens=False)
        if needs_bos:
            ids += bos
            labels += [-100] * len(bos)
        ids += inp
        labels += [-100] * len(inp)
        out = tok.encode(turn["output"], add_special_tokens=False)
        ids += out
        labels += out
        if turn.get("need_eos_token", True):
            ids.append(tok.eos_token_id)
            labels.append(tok.eos_token_id)
        else:
            needs_bos = False
    return ids, labels


@pytest.mark.parametrize("method", ["qlora", "full"])
def test_xtuner_config_loads_with_mmengine_and_has_xtuners_fields(method, tmp_path):
    from mmengine.config import Config

    from puyu_lab.finetune.config import SFTConfig
    from puyu_lab.finetune.xtuner import XTUNER_DATA, xtuner_config

    p = tmp_path / "xtuner_config.py"
    p.write_text(xtuner_config(SFTConfig(method=method)), encoding="utf-8")
    cfg = Config.fromfile(str(p), lazy_import=True)  # XTuner's own modules are not imported
    assert XTUNER_FIELDS <= set(cfg.keys()), XTUNER_FIELDS - set(cfg.keys())
    assert cfg.data_files == [XTUNER_DATA] and cfg.pack_to_max_length is False
    assert cfg.train_dataset.dataset_map_fn is None and cfg.train_dataset.template_map_fn is None
    assert ("quantization_config" in cfg.model.llm) == (method == "qlora")
    assert ("lora" in cfg.model) == (method != "full")


def test_xtuner_data_trains_exactly_what_puyu_lab_trains(layers):
    from puyu_lab.artifacts import load_sft_data
    from puyu_lab.models.template import encode_chat
    from puyu_lab.models.tokenizer import load_tokenizer
    from puyu_lab.workspace import Workspace

    ws = Workspace(layers.path("sft"))
    sft = ws.get("model/sft").path
    rows = [json.loads(line) for line in (sft / "xtuner_train.jsonl").read_text(encoding="utf-8").splitlines()]
    convs = load_sft_data(ws, "train")
    assert len(rows) == len(convs)
    tok = load_tokenizer(sft)
    tools = 0
    for conv, row in zip(convs, rows):
        ours = encode_chat(tok, conv["messages"])
        ids, labels = xtuner_encode(tok, row["conversation"])
        assert ids == ours.input_ids[:len(ids)] and labels == ours.labels[:len(ids)], conv["messages"]
        assert len(ours.input_ids) - len(ids) <= 1  # at most the template's last newline, never trained
        tools += any(m["role"] == "environment" for m in conv["messages"])
    assert tools > 0  # tool conversations (environment turns) went through
