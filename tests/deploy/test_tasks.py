"""Scoring a level's replies to held-out tasks, and the trade-off chart's frontier for a higher-is-better metric."""
from puyu_lab.deploy.measure import task_ok, task_scores
from puyu_lab.models.template import tool_call
from puyu_lab.panels.deploy import pareto, task_diff_html, task_table_html


def test_task_ok_reads_the_reply_as_the_task_asks():
    calc = {"task": "tool_choice", "answer": "calculator", "match": "tool"}
    none = {"task": "tool_choice", "answer": "none", "match": "tool"}
    call = tool_call("calculator", {"expression": "12*7"})
    assert task_ok(calc, call) and not task_ok(none, call)
    assert task_ok(none, "今天天气很好。") and not task_ok(calc, "84")
    assert not task_ok(calc, "<|action_start|><|plugin|>{not json")  # a call whose name cannot be read
    assert task_ok({"match": "contains", "answer": "小浦"}, "我是小浦，你的助手。")
    assert not task_ok({"match": "contains", "answer": "小浦"}, "我是助手。")
    assert task_ok({"match": "prefix", "answer": "正面"}, " 正面") and not task_ok({"match": "prefix", "answer": "正面"}, "不是正面")
    try:
        task_ok({"match": "fuzzy", "answer": "1"}, "1")
    except ValueError as e:
        assert "exact, contains, prefix, regex, tool" in str(e)
    else:
        raise AssertionError("an unknown match kind must be refused")


def test_deploy_and_eval_score_a_reply_by_the_same_rule():
    """A quantization level's task accuracy and the leaderboard's generation score read a reply the same way."""
    from puyu_lab.eval.tasks import Task, score_generation

    call = tool_call("calculator", {"expression": "12*7"})
    cases = [("contains", "小浦", "我是小浦。"), ("contains", "小浦", "我是助手"), ("prefix", "正面", " 正面。"),
             ("prefix", "正面", "不是正面"), ("tool", "calculator", call), ("tool", "none", call),
             ("tool", "none", "84"), ("exact", "84", " 84 "), ("regex", "84", "答案是 84。"), ("regex", "84", "8 4")]
    for match, answer, reply in cases:
        ours = task_ok({"match": match, "answer": answer}, reply)
        assert ours == bool(score_generation(Task("t", "generation", [], match=match), reply, answer)), (match, reply)
    assert [task_ok({"match": m, "answer": a}, r) for m, a, r in cases] == [
        True, False, True, False, True, False, True, True, True, False]


def test_task_scores_overall_and_per_task():
    items = [{"task": "a", "match": "contains", "answer": "x"}] * 2 + [{"task": "b", "match": "contains", "answer": "y"}] * 2
    acc, se, by = task_scores(items, ["x", "-", "y", "y"])
    assert acc == 0.75 and by == {"a": 0.5, "b": 1.0}
    assert se == 0.25  # mean_stderr of 1, 0, 1, 1: √(0.75 / 3) / √4, what the panel's interval is drawn from
    assert task_scores(items[:1], ["x"])[1] != task_scores(items[:1], ["x"])[1]  # one item: no standard error (NaN)


def test_a_levels_manifest_figures_carry_the_task_accuracy_and_its_stderr():
    """The deploy stage stores each level's task accuracy with its standard error (quant/<model>'s manifest and
    results.json); the panel only shows them."""
    from puyu_lab.deploy.measure import LevelResult

    items = [{"task": "a", "match": "contains", "answer": "x"}] * 4
    r = LevelResult("Q4_K_M", "q4.gguf", 3.0, 4.5, 90.0, 12.3456, 0.5, 0.012345, 0.1, 0.91234, 800.0, 120.04)
    assert "task_acc" not in r.key_figures() and "task_acc_stderr" not in r.key_figures()  # answered no tasks
    r.task_acc, r.task_acc_stderr, r.task_by = task_scores(items, ["x", "-", "x", "x"])
    assert r.key_figures() == {"size_mb": 3.0, "ppl": 12.346, "kl": 0.01235, "top1": 0.9123, "decode_tps": 120.0,
                               "task_acc": 0.75, "task_acc_stderr": 0.25}
    assert r.to_dict()["task_acc_stderr"] == 0.25


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
