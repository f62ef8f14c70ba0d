"""The model layer: one decode loop over transformers and llama.cpp, stop strings cut once, and
generations that a Stop from another thread ends at the next token (not only the reading loop)."""
import threading
import time

import pytest

from puyu_lab.models import GGUFModel, HFModel, cut_at_stops
from puyu_lab.models.base import _held_back
from puyu_lab.models.tokenizer import load_tokenizer


def test_stop_cutting_and_hold_back():
    assert cut_at_stops("a. b\nQ: c", ["\nQ:", "."]) == "a"
    assert cut_at_stops("abc", []) == "abc" and cut_at_stops("abc", ["", "x"]) == "abc"
    assert _held_back("answer\nQ", ["\nQ:"]) == 2 and _held_back("answer", ["\nQ:"]) == 0


@pytest.fixture(scope="module")
def models(model_dir, ladder):
    from transformers import AutoModelForCausalLM

    hf = HFModel(AutoModelForCausalLM.from_pretrained(str(model_dir)), load_tokenizer(model_dir), "hf")
    gg = GGUFModel(ladder["F32"], "gguf")
    yield {"hf": hf, "gguf": gg}
    gg.close()


@pytest.mark.slow
@pytest.mark.parametrize("which", ["hf", "gguf"])
def test_stop_from_another_thread_ends_the_generation_within_one_token(models, which):
    m = models[which]
    # how long one token step takes here
    g = m.generate("北京", max_new_tokens=16, ignore_eos=True)
    step_s = (g.seconds - g.prefill_seconds) / max(1, g.output_tokens - 1)
    flag = threading.Event()
    box = {}

    def consume():
        s = m.generate("北京", max_new_tokens=100_000, ignore_eos=True, stream=True, stop_flag=flag)
        box["pieces"] = [p for p in s]
        box["gen"] = s.generation
        box["ended"] = time.perf_counter()

    th = threading.Thread(target=consume)
    th.start()
    time.sleep(0.5)
    t_stop = time.perf_counter()
    flag.set()
    th.join(timeout=30)
    assert not th.is_alive(), "the generating thread did not end after Stop"
    gen = box["gen"]
    assert gen.finish == "stopped" and 0 < gen.output_tokens < 100_000
    assert box["ended"] - t_stop <= 2 * step_s + 0.05, (box["ended"] - t_stop, step_s)
    assert "".join(box["pieces"]) == gen.text


@pytest.mark.slow
def test_both_runtimes_decode_identically_and_stop_at_strings(models):
    hf, gg = models["hf"], models["gguf"]
    msgs = [{"role": "user", "content": "你好"}]
    a = hf.generate(msgs, max_new_tokens=12, watch="<|im_end|>")
    b = gg.generate(msgs, max_new_tokens=12, watch="<|im_end|>")
    assert a.prompt == b.prompt and a.tokens == b.tokens and a.text == b.text  # greedy, F32
    assert a.watch_prob == pytest.approx(b.watch_prob, rel=1e-3, abs=1e-6)
    full = hf.generate("北京的冬天", max_new_tokens=24, ignore_eos=True).text
    stop = next((full[i:i + 2] for i in range(3, len(full) - 2) if full[i:i + 2].strip()), None)
    if stop is not None:
        cut = hf.generate("北京的冬天", max_new_tokens=24, ignore_eos=True, stop=[stop])
        assert cut.finish == "stop" and cut.text == full[: full.index(stop)]
        streamed = "".join(hf.generate("北京的冬天", max_new_tokens=24, ignore_eos=True, stop=[stop], stream=True))
        assert streamed == cut.text  # the stream never shows a stop string, not even its start


@pytest.mark.slow
def test_copy_probe_is_the_same_through_both_runtimes(models):
    """The copying probe (random sequences shown twice) through lm-eval's scoring on transformers and
    on the F32 GGUF: the same figures; on a model with no induction heads the repeat is no easier. The
    GGUF model here was loaded for generation (no logits_all): scoring must not read llama.cpp's stale
    logits rows (it did: a first showing scored 2e13 nats/token, every second one exactly uniform)."""
    from puyu_lab.models.probes import copy_probe

    a, b = (copy_probe(models[k], n=6, length=24) for k in ("hf", "gguf"))
    print(a, b)
    for k in ("first_nll", "second_nll"):
        assert abs(a[k] - b[k]) < 2e-3, (k, a, b)
    assert a["first_nll"] > 1 and a["sequences"] == 6 and a["length"] == 24
    assert a["copied"] == b["copied"]
    # over a sub-vocabulary: every token asked about lies in the first `pieces` ids after the margin
    asked = []
    real = models["hf"].loglikelihood_tokens
    models["hf"].loglikelihood_tokens = lambda reqs: asked.extend(reqs) or real(reqs)
    try:
        sub = copy_probe(models["hf"], n=6, length=24, pieces=40)
    finally:
        del models["hf"].loglikelihood_tokens
    margin = min(300, models["hf"].vocab_size() // 10)
    assert all(margin <= t < margin + 40 for _, cont in asked for t in cont) and sub["sequences"] == 6


class _Only:
    """A constraint that allows a fixed set of ids (plus the end tokens)."""

    def __init__(self, ids):
        self.ids, self.started = list(ids), 0

    def start(self, prompt_ids, max_new_tokens=None):
        self.started += 1

    def process(self, ids, logits):
        from puyu_lab.models.constraints import mask_logits
        return mask_logits(logits, self.ids)


@pytest.mark.slow
def test_a_batch_decodes_what_each_prompt_decodes_alone(models):
    """generate_batch (left-padded, masked, one forward per token for all rows) gives each prompt the tokens,
    text, finish reason and first-token figures of its own generate — prompts of different lengths, chat and
    text, a stop string, a per-row constraint; and a Stop ends every row."""
    hf = models["hf"]
    assert hf.can_batch and not models["gguf"].can_batch
    inputs = [[{"role": "user", "content": "你好"}], "北京的冬天", [{"role": "user", "content": "今天天气怎么样？能出去走走吗"}],
              "The ", [{"role": "user", "content": "你是谁？"}]]
    full = hf.generate("北京的冬天", max_new_tokens=20, ignore_eos=True).text
    stop = next((full[i:i + 2] for i in range(3, len(full) - 2) if full[i:i + 2].strip()), "。")
    allowed = [hf.token_id(c) for c in "0123456789" if hf.token_id(c) is not None]
    cons = [None, None, _Only(allowed), None, None]
    kw = dict(max_new_tokens=16, stop=[stop], watch="<|im_end|>", keep_special=True)
    alone = [hf.generate(x, constraint=c and _Only(allowed), **kw) for x, c in zip(inputs, cons)]
    batch = hf.generate_batch(inputs, constraints=cons, **kw)
    assert cons[2].started == 1
    assert any(a.finish == "stop" for a in alone), "the test should exercise a stop string"
    for a, b in zip(alone, batch):
        assert (b.tokens, b.text, b.finish, b.prompt, b.prompt_tokens) == (a.tokens, a.text, a.finish, a.prompt,
                                                                          a.prompt_tokens)
        assert [t for t, _ in b.first_token] == [t for t, _ in a.first_token]
        assert b.watch_prob == pytest.approx(a.watch_prob, abs=1e-5)
    assert set(batch[2].tokens) <= set(allowed) | hf.stop_token_ids()
    # a batch smaller than the prompts: the same
    assert [g.tokens for g in hf.generate_batch(inputs, constraints=cons, batch_size=2, **kw)] == [g.tokens for g in batch]
    # Stop before the first step: every row ends "stopped" with nothing generated
    flag = threading.Event()
    flag.set()
    assert {g.finish for g in hf.generate_batch(inputs, stop_flag=flag, max_new_tokens=8)} == {"stopped"}
    with pytest.raises(ValueError, match="one \\(or None\\) per prompt"):
        hf.generate_batch(inputs, constraints=[None])
    # llama.cpp decodes one sequence per context: the same call runs the prompts one by one
    gg = models["gguf"].generate_batch(inputs[:2], max_new_tokens=8)
    assert [g.tokens for g in gg] == [hf.generate(x, max_new_tokens=8).tokens for x in inputs[:2]]


@pytest.mark.slow
def test_gguf_scoring_evaluates_a_shared_context_once_and_scores_the_same(ladder):
    """The choices of a question share its context: the scoring context keeps its cache and evaluates only what
    follows the shared prefix — and every log-likelihood equals a fresh context's for that request alone."""
    ctxs = ["北京的冬天很冷，人们常常", "今天的新闻说，科学家们发现"]
    reqs = [(c, x) for c in ctxs for x in ["穿上厚厚的衣服。", "去公园散步。", "在家里看书和喝茶。"]]
    m = GGUFModel(ladder["F32"], "reuse", max_length=255)
    evaluated, orig = [], m.llm.eval
    m.llm.eval = lambda toks: (evaluated.append(len(toks)), orig(toks))[1]
    got = m.loglikelihood(reqs)
    whole = sum(len(c) + len(k) - 1 for c, k in (m.encode_pair(*r) for r in reqs))
    m.close()
    assert sum(evaluated) < 0.7 * whole, (sum(evaluated), whole)
    for r, (ll, greedy) in zip(reqs, got):
        f = GGUFModel(ladder["F32"], "fresh", max_length=255)
        (ll0, greedy0), = f.loglikelihood([r])
        f.close()
        assert ll == pytest.approx(ll0, abs=1e-4) and greedy == greedy0
