"""Scoring a level's replies to held-out tasks (the trade-off chart's frontier and task views:
tests/panels/test_deploy.py)."""
from puyu_lab.deploy.measure import task_ok, task_scores
from puyu_lab.models.template import tool_call


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


