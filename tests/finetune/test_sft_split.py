"""The SFT held-out split is leak-free: a repeated conversation (self-cognition ×10) or one that
differs only in spacing/case never sits on both sides; a tiny data set still trains on something."""
import pytest

from puyu_lab.errors import InputError
from puyu_lab.finetune import data as D
from puyu_lab.finetune.train import conversation_key, encode_all, split_eval


def chat(q, a):
    return {"kind": "custom", "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


def test_no_training_example_appears_in_the_eval_split(tok):
    from puyu_lab.data.sources import load_reviews_zh

    s = D.SFTDataSettings(dialogs_en=20, sentiment_max=200, tool_examples=20, tool_heldout=5)
    reviews = load_reviews_zh().sample(400, random_state=0).to_dict("records")
    custom = [chat("Hello  World", "Hi!"), chat("hello world", "hi!"), chat(" HELLO world ", "Hi! ")]
    mix = D.build_mixture(s, reviews, custom)["train"]
    assert len(mix) > len({conversation_key(c["messages"]) for c in mix}), "the mixture repeats conversations"
    keys = []
    rows, _ = encode_all(tok, mix, 384, keys)
    for seed in range(3):
        train, ev, info = split_eval(rows, keys, 0.04, seed)
        # what each side holds, after normalisation (the keys) and as the model sees it (token ids)
        key_of = {id(r): k for r, k in zip(rows, keys)}
        train_keys = {key_of[id(r)] for r in train}
        eval_keys = [key_of[id(r)] for r in ev]
        assert train_keys.isdisjoint(eval_keys), "a training example is in the eval split"
        assert len(eval_keys) == len(set(eval_keys)) == info["eval_conversations"] >= 8
        assert {tuple(r["input_ids"]) for r in train}.isdisjoint(tuple(r["input_ids"]) for r in ev)
        assert len(train) + len(ev) + info["eval_copies_dropped"] == len(rows)
    assert conversation_key(custom[0]["messages"]) == conversation_key(custom[2]["messages"])


def test_tiny_data_keeps_one_training_conversation_and_says_so():
    rows = [{"input_ids": [i], "labels": [i]} for i in range(5)]
    train, ev, info = split_eval(rows, ["a", "b", "c", "a", "b"], 0.04, 0)
    assert len({r["input_ids"][0] for r in train}) >= 1 and len(ev) == 2
    assert "1 left to train on" in info["note"]
    with pytest.raises(InputError, match=r"only 1 distinct SFT conversation\(s\).*at least 2"):
        split_eval(rows, ["a"] * 5, 0.04, 0)
