"""The quantization trade-off panel and the memory what-if (puyu_lab/panels/deploy.py): real measurements of
the ladder drawn, a comparison that raises, the Pareto frontier, the per-task views."""
import numpy as np
import pytest

from puyu_lab.panels.deploy import pareto, task_diff_html, task_table_html

from ..deploy.helpers import TEXT


@pytest.mark.slow
def test_tradeoff_panel_from_real_measurements(model_dir, ladder, tmp_path):
    from puyu_lab.deploy.measure import measure_ladder
    from puyu_lab.panels.deploy import QuantTradeoffPanel
    from puyu_lab.models.tokenizer import load_tokenizer

    tok = load_tokenizer(model_dir)
    ids = tok(TEXT * 12)["input_ids"][:256]
    from puyu_lab.models.template import encode_chat

    enc = encode_chat(tok, [{"role": "user", "content": "你是谁？"}, {"role": "assistant", "content": "我是小浦。"}])
    # held-out task items, as pipeline.task_items makes them: every GGUF level answers them greedily
    from puyu_lab.contracts.protocol import tool_prompt
    from puyu_lab.contracts.scoring import mean_stderr
    from puyu_lab.deploy.measure import task_ok
    from puyu_lab.models import GGUFModel

    items = [{"task": "selfcog", "messages": [{"role": "user", "content": "你是谁？"}], "answer": "小浦",
              "match": "contains", "max_new_tokens": 6},
             {"task": "tool_choice", "messages": tool_prompt("12*7 等于多少？"), "answer": "none", "match": "tool",
              "stop": ["<|action_end|>"], "max_new_tokens": 6}]
    rows, detail = measure_ladder(dict(ladder), ids, n_ctx=128, decode_tokens=4,
                                  chat=[(enc.input_ids, enc.trained.index(True))], tasks=items)
    with GGUFModel(ladder["Q2_K"]) as m:  # the replies are the level's own greedy generations
        assert [m.generate(it["messages"], max_new_tokens=it["max_new_tokens"], stop=tuple(it.get("stop", ())),
                           keep_special=True).text for it in items] == rows[-1].replies
    for r in rows:
        solved = [float(task_ok(it, x)) for it, x in zip(items, r.replies)]
        assert len(r.replies) == 2 and r.task_acc == np.mean(solved) and r.task_acc_stderr == mean_stderr(solved)
        assert set(r.task_by) == {"selfcog", "tool_choice"}
    rows = [r.to_dict() for r in rows]
    panel = QuantTradeoffPanel(rows, {**detail, "tasks": items}, tok, files=dict(ladder))
    assert panel.tasks.value.count("<tr>") == 1 + len(ladder)  # the per-task table: a row per level
    assert panel.tasks.value.count("(n=2)") == len(ladder)  # each overall accuracy with its interval and sample size
    panel.task_level.value = "Q2_K"
    assert "Q2_K" in panel.tasks.value and "task_acc" in [v for _, v in panel.metric.options]
    assert panel.points == len(ladder) == 8  # one point per level
    assert list(panel.fig.data[0].text) == list(ladder)
    panel.sort_by.value = "kl_mean"
    assert [r["level"] for r in panel.sorted_rows()][0] == max(rows, key=lambda r: r["kl_mean"])["level"]
    assert "Q2_K" in panel.table.value
    panel.heat_level.value = "Q2_K"
    assert panel.heat.value.count("<span title='KL") == min(240, len(detail["targets"]))
    gens = panel.compare("今天", ["F32", "Q2_K"], max_new_tokens=4, wait=True)
    assert set(gens) == {"F32", "Q2_K"} and "Q2_K" in panel.gens.value
    chart, table = panel.export(tmp_path)
    assert chart.stat().st_size > 100_000 and table.read_text().splitlines()[0].startswith("level,backend,size_mb")
    panel.metric.value = "delta_ppl"
    assert panel.fig.layout.yaxis.type == "linear"
    # the per-tensor type map: every weight matrix of every level, as the files hold them
    import re

    from puyu_lab.deploy.quantize import tensor_types, type_map, weight_types

    tm = type_map(dict(ladder))
    assert len(tm) == sum(weight_types(ladder["F32"]).values())
    assert re.findall(r"data-type='([^']*)'", panel.types.value) == [tm[n][lv] for n in tm for lv in ladder]
    assert all(tm[n][lv] == tensor_types(ladder[lv])[n] for n in tm for lv in ladder)
    assert len({tm[n]["Q4_K_M"] for n in tm}) > 1  # the _M mix keeps some tensors a step higher
    # on the chat replies: the points and the frontier follow the metric
    from puyu_lab.panels.deploy import pareto

    panel.metric.value = "kl_chat_mean"
    assert panel.fig.layout.yaxis.type == "log"
    assert list(panel.fig.data[0].y) == [max(r["kl_chat_mean"], 1e-6) for r in rows]
    assert list(panel.fig.data[1].x) == [r["size_mb"] for r in pareto(rows, "kl_chat_mean")]
    # held-out tasks solved: higher is better, the frontier follows (no level both smaller and more accurate)
    panel.metric.value = "task_acc"
    assert panel.fig.layout.yaxis.type == "linear" and list(panel.fig.data[0].y) == [r["task_acc"] for r in rows]
    front = pareto(rows, "task_acc")
    assert all(not (o["size_mb"] <= f["size_mb"] and o["task_acc"] > f["task_acc"]) for f in front for o in rows if o is not f)


@pytest.mark.slow
def test_memory_whatif_real_models():
    from puyu_lab.deploy.memory import KNOWN, count_parameters, estimate
    from puyu_lab.panels.deploy import MemoryWhatIf

    assert round(count_parameters(KNOWN["InternLM2-chat-1.8B"]) / 1e9, 2) == 1.89
    assert round(count_parameters(KNOWN["InternLM2-chat-7B"]) / 1e9, 2) == 7.74
    e = estimate(KNOWN["InternLM2-chat-7B"], "bf16/fp16", context=32768, kv="f16")
    assert abs(e["kv_cache_gb"] - 4.0) < 1e-9  # 2 × 32 layers × 32768 × 8 heads × 128 × 2 bytes
    assert e["fits"] == {8: False, 24: True, 80: True}
    w = MemoryWhatIf()
    w.model.value = "InternLM2-chat-7B"
    w.weights.value = "Q4_K_M"
    assert w.last["fits"][8] and "fits" in w.out.value


@pytest.mark.slow
def test_a_comparison_that_raises_is_shown_in_the_panel_and_kept(monkeypatch):
    import puyu_lab.panels.deploy as dp

    rows = [{"level": lv, "backend": "llama.cpp", "size_mb": s, "bits_per_weight": b, "rss_mb": s, "ppl": 10.0,
             "delta_ppl": d, "kl_mean": k, "kl_p99": k, "top1": 0.9, "prefill_tps": 100.0, "decode_tps": 50.0,
             "file": f"/nonexistent/{lv}.gguf"}
            for lv, s, b, d, k in [("F32", 40.0, 32.0, 0.0, 0.0), ("Q4_K_M", 8.0, 4.8, 0.1, 0.01)]]
    panel = dp.QuantTradeoffPanel(rows)
    assert panel.types.value == ""  # files named by rows but not here (another machine): no type map, no error

    def broken(*a, **kw):
        raise FileNotFoundError("/nonexistent/F32.gguf")

    monkeypatch.setattr(dp, "compare_generations", broken)
    with pytest.raises(FileNotFoundError):
        panel.compare("今天", ["F32"], wait=True)
    assert isinstance(panel.error, FileNotFoundError) and not panel.gen_btn.disabled
    assert "FileNotFoundError: /nonexistent/F32.gguf" in panel.gens.value


def test_pareto_for_accuracy_keeps_the_smaller_and_more_accurate():
    rows = [{"level": "F32", "size_mb": 20, "task_acc": 0.9}, {"level": "Q8_0", "size_mb": 6, "task_acc": 0.9},
            {"level": "Q4_K_M", "size_mb": 3, "task_acc": 0.8}, {"level": "Q3_K_M", "size_mb": 2.6, "task_acc": 0.85},
            {"level": "Q2_K", "size_mb": 2.3, "task_acc": 0.5}, {"level": "HF fp32", "size_mb": 21, "task_acc": None}]
    assert [r["level"] for r in pareto(rows, "task_acc")] == ["Q2_K", "Q3_K_M", "Q8_0"]


def test_task_views_show_what_a_level_loses():
    items = [{"task": "selfcog", "match": "contains", "answer": "小浦", "messages": [{"role": "user", "content": "你是谁？"}]},
             {"task": "sentiment", "match": "prefix", "answer": "正面", "messages": [{"role": "user", "content": "好评"}]}]
    ref = {"level": "F32", "replies": ["我是小浦", "负面"], "task_by": {"selfcog": 1.0, "sentiment": 0.0}, "task_acc": 0.5}
    low = {"level": "Q2_K", "replies": ["我是助手", "正面"], "task_by": {"selfcog": 0.0, "sentiment": 1.0}, "task_acc": 0.5}
    table = task_table_html([ref, low, {"level": "HF fp32"}])
    assert table.count("<tr>") == 3 and "100%" in table
    assert "± " not in table  # no stored standard error: the accuracy alone (the panel derives none)
    shown = task_table_html([{**ref, "task_acc_stderr": 0.1}])
    assert "50% ± 20% (n=2)" in shown  # ±1.96 × the stage's task_acc_stderr, as stored
    diff = task_diff_html(items, ref, low)
    assert "我是助手" in diff and "好评" not in diff  # the item it lost, not the one it gained
    assert "1" in diff
