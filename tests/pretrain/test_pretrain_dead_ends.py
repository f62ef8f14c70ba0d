"""Pretraining refuses clearly: a corpus smaller than one block, a resume whose tokenizer or preset changed."""
import dataclasses

import pytest

from puyu_lab.errors import InputError
from puyu_lab.pretrain.model import ModelPreset
from puyu_lab.pretrain.tokenizer import load_tokenizer
from puyu_lab.pretrain.train import PretrainConfig, last_checkpoint, pack, pretrain, train_tokenizer

TINY = ModelPreset(hidden_size=256, num_layers=1, num_heads=4, num_kv_heads=2, intermediate_size=256,
                   vocab_size=3072, block_size=64)


@pytest.fixture(scope="module")
def ws(layers, tmp_path_factory):
    return layers.workspace("tokenizer", tmp_path_factory.mktemp("pre") / "ws")


def test_corpus_smaller_than_one_block_says_tokens_and_what_to_do(ws):
    tok = load_tokenizer(ws.get("tokenizer/spm").path)
    with pytest.raises(InputError, match=r"my split has only \d+ tokens: not one block of 4096 tokens.*Add documents"
                                         r".*smaller block_size"):
        pack(tok, ["北京的冬天很冷。", "今天天气很好。"], 4096, what="my split")
    arr, info = pack(tok, ["北京的冬天很冷。" * 20], 16)
    assert arr.shape[1] == 16 and info["blocks"] == len(arr)


@pytest.mark.slow
def test_resume_refuses_a_changed_preset_or_tokenizer(ws):
    cfg = PretrainConfig(preset=TINY, batch_size=2, max_steps=4, warmup_steps=1, eval_every=2, save_every=2,
                         log_every=1, sample_every=0, sample_tokens=2, eval_blocks=2, progress_bar=False, bf16=False)
    first = pretrain(ws, dataclasses.replace(cfg, max_steps=2))
    ckpt = last_checkpoint(ws)
    assert first.steps == 2 and ckpt
    bigger = dataclasses.replace(cfg, preset=dataclasses.replace(TINY, num_layers=2))
    with pytest.raises(InputError, match=r"cannot resume .*the model preset \(num_layers 1 → 2\) changed.*new run"):
        pretrain(ws, bigger, resume=True)
    assert last_checkpoint(ws) == ckpt, "the refused resume left the checkpoints alone"
    train_tokenizer(ws, 2560)  # the tokenizer is retrained with another vocabulary
    with pytest.raises(InputError, match=r"cannot resume .*the tokenizer \(tokenizer/spm was .* changed"):
        pretrain(ws, cfg, resume=True)
    assert last_checkpoint(ws) == ckpt
