"""What the pretraining stage's tests share with the training panel's (tests/panels/test_pretrain.py)."""
import pytest

from puyu_lab.pretrain.model import ModelPreset
from puyu_lab.pretrain.train import PretrainConfig

TINY = ModelPreset(hidden_size=256, num_layers=1, num_heads=4, num_kv_heads=2, intermediate_size=256,
                   vocab_size=3072, block_size=64)


def tiny_cfg(**kw) -> PretrainConfig:
    base = dict(preset=TINY, batch_size=4, max_steps=8, warmup_steps=2, eval_every=4, save_every=4, log_every=1,
                sample_every=4, sample_tokens=4, eval_blocks=4, progress_bar=False, bf16=False)
    base.update(kw)
    return PretrainConfig(**base)


@pytest.fixture(scope="module")
def ws(layers, tmp_path_factory):
    return layers.workspace("tokenizer", tmp_path_factory.mktemp("pre") / "ws")
