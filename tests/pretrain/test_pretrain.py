"""Tokenizer ids, stop/resume on one curve, clear errors (the panel as a Trainer listener: tests/panels/test_pretrain.py)."""
import json
import subprocess
import sys

import pytest

from puyu_lab.errors import InputError
from puyu_lab.events import StopFlag
from puyu_lab.data.pipeline import load_corpus
from puyu_lab.pretrain.tokenizer import SPECIAL_TOKENS, TokenizerSettings, load_tokenizer, train_sentencepiece
from puyu_lab.pretrain.train import pretrain, train_tokenizer
from puyu_lab.workspace import MissingArtifact, Workspace

from .helpers import tiny_cfg, ws  # noqa: F401 (ws: a fixture)

pytestmark = pytest.mark.slow


MIXED = ["北京的冬天很冷，但是人们的生活依然丰富多彩。", "The quick brown fox jumps over 13 lazy dogs.",
         "混合 mixed 文本 text 😀 ｘ１２３ and emoji 🚀", "  leading spaces and\nnewlines\n\n  trailing  ",
         "<|im_start|>user\n你好，你是谁？<|im_end|>\n<|im_start|>assistant\n", "价格：￥１２９９．００元（含税）",
         "a  b   c\t\td", "Ünïcödé çafé naïve — “quotes” ‘single’", "数学公式 E=mc^2 与 x≤y≥z"]


def test_hf_ids_equal_sentencepiece_ids(ws):
    import sentencepiece as spm

    art = ws.get("tokenizer/spm")
    tok = load_tokenizer(art.path)
    sp = spm.SentencePieceProcessor(model_file=str(art.path / "tokenizer.model"))
    for text in MIXED:
        assert tok(text, add_special_tokens=False)["input_ids"] == sp.encode(text), text
        assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    for i, special in enumerate(SPECIAL_TOKENS):
        assert tok.convert_tokens_to_ids(special) == i + 3 == sp.piece_to_id(special)
    assert tok.bos_token_id == 1 and tok.eos_token_id == 2
    assert art.metrics["vocab_size"] == 3072 and art.metrics["chars_per_token_zh"] > 1


def test_too_small_vocabulary_says_how_large(ws, tmp_path):
    texts = load_corpus(ws)["text"]
    with pytest.raises(InputError, match=r"vocab_size 1500 is too small for this corpus.*use vocab_size ≥ \d+"):
        train_sentencepiece(texts, tmp_path / "t", TokenizerSettings(vocab_size=1500))


def test_missing_corpus_names_the_data_lab(tmp_path):
    with pytest.raises(MissingArtifact, match=r"01_data\.ipynb"):
        train_tokenizer(Workspace(tmp_path / "empty"), 2000)
    with pytest.raises(MissingArtifact, match=r"01_data\.ipynb"):
        pretrain(Workspace(tmp_path / "empty"), tiny_cfg())


def test_corrupt_tokenizer_is_a_clear_error(ws, tmp_path):
    import shutil

    bad = tmp_path / "tok"
    shutil.copytree(ws.get("tokenizer/spm").path, bad)
    data = (bad / "tokenizer.model").read_bytes()
    (bad / "tokenizer.model").write_bytes(data[: len(data) // 3])
    with pytest.raises(InputError, match="not a valid sentencepiece model.*retrain"):
        load_tokenizer(bad)
    (bad / "tokenizer.model").unlink()
    with pytest.raises(InputError, match="no tokenizer here"):
        load_tokenizer(bad)


def test_stop_then_resume_continues_the_same_curve(ws):
    straight = pretrain(ws, tiny_cfg())  # the same run without a stop, for reference
    reference = {h["step"]: h["loss"] for h in straight.history if "loss" in h}
    stop = StopFlag()
    events = []

    def listener(e):
        events.append(e)
        if e.kind == "log" and e["step"] >= 3:
            stop.set()  # what the Stop button does

    first = pretrain(ws, tiny_cfg(), on_event=listener, stop=stop)
    assert first.stopped and first.steps in (3, 4), "training stops at the next step after the request"
    assert first.checkpoint and first.checkpoint.endswith(f"checkpoint-{first.steps}"), "Stop saves a checkpoint"
    assert ws.get("model/base").metrics["stopped"] is True
    steps_first = [h["step"] for h in first.history if "loss" in h]

    second = pretrain(ws, tiny_cfg(), resume=True, on_event=events.append, stop=StopFlag())
    assert not second.stopped and second.steps == 8
    steps = [h["step"] for h in second.history if "loss" in h]
    assert steps[: len(steps_first)] == steps_first, "the resumed run keeps the first part of the curve"
    assert steps == sorted(steps) and steps[-1] == 8 and len(set(steps)) == len(steps), "one curve, no restart"
    begin = [e for e in events if e.kind == "begin"]
    assert begin[-1]["step"] == first.steps and any("loss" in h for h in begin[-1]["history"])
    m = ws.get("model/base").metrics
    assert m["steps"] == 8
    # the rate counts this session's steps over this session's time (the history holds the first session's too)
    end = [h for h in second.history if "train_runtime" in h][-1]
    assert m["tokens_per_s"] == pytest.approx((8 - first.steps) * tiny_cfg().tokens_per_step / end["train_runtime"],
                                              rel=0.01, abs=0.1)
    # the copying probe: 8 steps teach no copying — the repeat of a random sequence is no easier
    assert m["copy_first_nll"] > 5 and abs(m["copy_gain"]) < 0.5 and "copy_second_nll" in m
    # probing it did not give the base model's saved tokenizer a chat template (the eval lab would then
    # wrap the base model's prompts in one)
    from puyu_lab.models.tokenizer import load_tokenizer

    assert not load_tokenizer(ws.get("model/base").path).chat_template
    # the checkpoint carried the weights, both optimizers' state (Muon and AdamW), the schedule and the
    # data position: the resumed steps lose what the uninterrupted run lost
    resumed = {h["step"]: h["loss"] for h in second.history if "loss" in h}
    assert resumed == pytest.approx(reference, rel=1e-5)
    final = [[h["eval_loss"] for h in r.history if "eval_loss" in h][-1] for r in (second, straight)]
    assert final[0] == pytest.approx(final[1], rel=1e-5)


def test_cli_runs_under_accelerate_launch(ws, tmp_path):
    """The same entry point a multi-GPU user runs with accelerate, here with one CPU process."""
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(tiny_cfg(max_steps=2, sample_every=0).to_dict()))
    out = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1",
                          "-m", "puyu_lab", "pretrain", "train", "--home", str(ws.root), "--config", str(cfg)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert ws.get("model/base").metrics["steps"] == 2


def test_tokenizer_speaks_the_tool_protocol(ws, tmp_path):
    """Trained on the corpus plus the protocol text, a tool call is a handful of pieces (it was 66
    with the corpus alone) and the corpus compresses no worse (within 5 %)."""
    from puyu_lab.pretrain.tokenizer import chars_per_token, tool_call_tokens

    m = ws.get("tokenizer/spm").metrics
    assert m["tokens_per_tool_call"] <= 20 and m["tokens_per_tool_call_max"] <= 30, m
    texts = list(load_corpus(ws, "train")["text"])
    held = [t for t in load_corpus(ws, "heldout")["text"]][:100]
    alone = train_sentencepiece(texts, tmp_path / "alone", TokenizerSettings(vocab_size=3072, protocol_rounds=0,
                                                                            split_by_unicode_script=True))
    tok_alone, tok = load_tokenizer(alone), load_tokenizer(ws.get("tokenizer/spm").path)
    assert tool_call_tokens(tok_alone)["median"] > 2 * m["tokens_per_tool_call"]
    assert chars_per_token(tok, held) >= 0.95 * chars_per_token(tok_alone, held)
    pieces = tool_call_tokens(tok)["example"]
    assert '▁"calculator",' in pieces and pieces.count("4") == 1, pieces  # names whole, digits one by one


def test_an_experiment_beside_model_base_leaves_it_as_it_is(layers, tmp_path):
    """Lab 02 suggests training a second model into model/base-adamw with a run of its own: the stage may write and
    read it, and model/base (and its checkpoints) stay untouched."""
    from puyu_lab.pretrain.model import ModelPreset
    from puyu_lab.pretrain.train import PretrainConfig, pretrain

    ws = layers.workspace("base", tmp_path / "ws")
    before = ws.get("model/base").id
    tiny = ModelPreset(hidden_size=256, num_layers=1, num_heads=4, num_kv_heads=2, intermediate_size=256,
                       vocab_size=3072, block_size=32)
    cfg = PretrainConfig(preset=tiny, batch_size=2, max_steps=3, warmup_steps=1, eval_every=3, save_every=3,
                         sample_every=0, eval_blocks=2, progress_bar=False, bf16=False, optimizer="adamw")
    res = pretrain(ws, cfg, output="model/base-adamw", run="pretrain-adamw")
    assert res.artifact.name == "model/base-adamw" and ws.get("model/base").id == before
