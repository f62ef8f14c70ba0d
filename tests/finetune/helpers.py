"""What the fine-tune stage's tests share with the chat panel's (tests/panels/test_chat.py)."""
import pytest

from puyu_lab.data.pipeline import prepare
from puyu_lab.data.sources import load_sources
from puyu_lab.finetune.data import SFTDataSettings
from puyu_lab.finetune.train import SFTConfig, prepare_data
from puyu_lab.pretrain.model import ModelPreset
from puyu_lab.pretrain.train import PretrainConfig, pretrain, train_tokenizer
from puyu_lab.workspace import Workspace

TINY = ModelPreset(hidden_size=256, num_layers=1, num_heads=4, num_kv_heads=2, intermediate_size=256,
                   vocab_size=3072, block_size=64)
SMALL_DATA = SFTDataSettings(dialogs_zh=30, dialogs_en=10, sentiment_max=20, tool_examples=10, tool_heldout=5, self_repeat=1)


def cfg(**kw) -> SFTConfig:
    base = dict(max_steps=4, batch_size=4, max_length=160, sample_every=2, save_every=2, log_every=1,
                sample_tokens=4, progress_bar=False, data=SMALL_DATA, bf16=False)
    base.update(kw)
    return SFTConfig(**base)


_BUILT: list = []  # the workspace, built once per session


@pytest.fixture(scope="session")
def ws(tmp_path_factory):
    """A workspace up to sft/data with a tiny model/base, built once per session and shared by the fine-tune
    stage's tests and the chat panel's (tests/panels/test_chat.py)."""
    if _BUILT:
        return _BUILT[0]
    ws = Workspace(tmp_path_factory.mktemp("sft") / "ws")
    prepare(raw=load_sources(["news-zh", "reviews-zh"], limit_per_source=400, seed=1), show_progress=False).export(ws)
    train_tokenizer(ws, 3072)
    pretrain(ws, PretrainConfig(preset=TINY, batch_size=4, max_steps=6, warmup_steps=1, eval_every=6, save_every=6,
                                sample_every=0, eval_blocks=4, progress_bar=False, bf16=False))
    prepare_data(ws, cfg())
    _BUILT.append(ws)
    return ws
