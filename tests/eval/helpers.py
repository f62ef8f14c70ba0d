"""What the eval stage's tests share with the eval panel's (tests/panels/test_eval.py)."""
import json
import random

import pytest

from puyu_lab.workspace import Workspace

MAX_LEN = 64  # small, so the perplexity docs need several rolling windows


_BUILT: list = []  # (workspace, model directory, task folder), built once per session


@pytest.fixture(scope="session")
def setup(tmp_path_factory):
    """A tiny model/base and task files (choice, perplexity) with their lm-eval YAML, built once per session and
    shared by the eval stage's tests and the eval panel's (tests/panels/test_eval.py)."""
    if not _BUILT:
        _BUILT.append(_build(tmp_path_factory))
    return _BUILT[0]


def _build(tmp_path_factory):
    from puyu_lab.data.pipeline import load_corpus, prepare
    from puyu_lab.data.sources import load_sources
    from puyu_lab.finetune.data import chatterbot_dialogs
    from puyu_lab.pretrain.model import ModelPreset
    from puyu_lab.pretrain.train import PretrainConfig, pretrain, train_tokenizer

    root = tmp_path_factory.mktemp("ev")
    ws = Workspace(root / "ws")
    prepare(raw=load_sources(["news-zh", "reviews-zh"], limit_per_source=300, seed=4), show_progress=False).export(ws)
    train_tokenizer(ws, 3072)
    pretrain(ws, PretrainConfig(preset=ModelPreset(hidden_size=256, num_layers=1, num_heads=4, num_kv_heads=2,
                                                   intermediate_size=256, vocab_size=3072, block_size=64),
                                batch_size=4, max_steps=20, warmup_steps=2, eval_every=20, save_every=20,
                                sample_every=0, eval_blocks=4, progress_bar=False, bf16=False))
    rows = load_corpus(ws, "train").to_list()
    rng = random.Random(0)
    reviews = [r for r in rows if r.get("label")][:24]
    choice = [{"context": f"评论：{r['text'][:80]}\n情感：", "choices": ["正面", "负面"],
               "gold": 0 if r["label"] == "pos" else 1} for r in reviews]
    dialogs = [d for d in chatterbot_dialogs() if d["lang"] == "zh" and len(d["messages"][1]["content"]) <= 30][:40]
    for d in dialogs[:16]:  # four replies: the true one and three from other dialogs (lengths differ: acc_norm)
        true = d["messages"][1]["content"]
        others = rng.sample([x["messages"][1]["content"] for x in dialogs if x is not d], 3)
        opts = others + [true]
        rng.shuffle(opts)
        choice.append({"context": d["messages"][0]["content"], "choices": opts, "gold": opts.index(true)})
    ppl = [{"text": r["text"][:300]} for r in rows if r["source"] == "news-zh"][:6]
    data = root / "tasks"
    data.mkdir()
    (data / "choice.jsonl").write_text("\n".join(json.dumps(d, ensure_ascii=False) for d in choice) + "\n")
    (data / "ppl.jsonl").write_text("\n".join(json.dumps(d, ensure_ascii=False) for d in ppl) + "\n")
    (data / "puyu_choice.yaml").write_text(f"""task: puyu_choice
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data / 'choice.jsonl'}
test_split: test
output_type: multiple_choice
doc_to_text: context
doc_to_choice: choices
doc_to_target: gold
target_delimiter: " "
metric_list:
  - metric: acc
  - metric: acc_norm
""")
    (data / "puyu_ppl.yaml").write_text(f"""task: puyu_ppl
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data / 'ppl.jsonl'}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{{{text}}}}"
metric_list:
  - metric: word_perplexity
  - metric: byte_perplexity
  - metric: bits_per_byte
""")
    return ws, ws.get("model/base").path, data
