"""Each reward function scores known-good and known-bad completions as it should; the naive reward pays the hacked
completion (a needless call) that the checked reward does not."""
import json

import pytest

from puyu_lab.models.template import tool_call
from puyu_lab.rl import rewards as R

END = "<|im_end|>"


def call(name, params, before="我来算一下。"):
    return before + tool_call(name, params) + END


CALC_OK = call("calculator", {"expression": "83*31"})  # gold 2573
CALC_WRONG_EXPR = call("calculator", {"expression": "83*13"})
CALC_BAD_JSON = "我来算。<|action_start|><|plugin|>\n{\"name\": \"calculator\", \"parameters\": {\"expression\": 83*31}<|action_end|>\n" + END
CALC_UNKNOWN_TOOL = call("abacus", {"expression": "83*31"})
CALC_BAD_ARGS = call("calculator", {"expr": "83*31"})
CALC_REFUSED = call("calculator", {"expression": "import os"})
DIRECT_NUMBER = "83*31 = 2573。" + END
DIRECT_WRONG = "83*31 = 2500。" + END
DATE_OK = call("add_days", {"date": "2024-05-01", "days": 37})  # gold 2024-06-07
DATE_WRONG_TOOL = call("calculator", {"expression": "1+37"})
DATE_BAD_DAYS = call("add_days", {"date": "2024-05-01", "days": "37"})
CHAT = "我是你的助手，很高兴认识你。" + END
NEEDLESS = call("calculator", {"expression": "1+1"}, before="")  # the hacked completion on a no-tool question
CUT_OFF = "我是你的助手，很高兴认识你，我可以" 
AFTER_CALL = "我来算。" + tool_call("calculator", {"expression": "83*31"}) + "结果是 2573。" + END

A, D, N = "arithmetic", "date", "notool"
GA, GD = "2573", "2024-06-07"


def cols(*rows):
    return [r[0] for r in rows], {"kind": [r[1] for r in rows], "gold": [r[2] for r in rows]}


def test_parse_call_runs_the_real_tool():
    c = R.parse_call(CALC_OK)
    assert c.valid and c.name == "calculator" and c.result == 2573
    d = R.parse_call(DATE_OK)
    assert d.valid and d.result["date"] == GD
    assert R.parse_call(CHAT) is None
    for bad in (CALC_BAD_JSON, CALC_UNKNOWN_TOOL, CALC_BAD_ARGS, CALC_REFUSED, DATE_BAD_DAYS):
        assert not R.parse_call(bad).valid, bad
    assert "no tool 'abacus'" in R.parse_call(CALC_UNKNOWN_TOOL).error


def test_answer_correct():
    good = [(CALC_OK, A, GA), (DIRECT_NUMBER, A, GA), (DATE_OK, D, GD), ("那天是 2024-06-07。" + END, D, GD), (CHAT, N, "")]
    bad = [(CALC_WRONG_EXPR, A, GA), (CALC_BAD_JSON, A, GA), (CALC_UNKNOWN_TOOL, A, GA), (DIRECT_WRONG, A, GA),
           (DATE_WRONG_TOOL, D, GD), (DATE_BAD_DAYS, D, GD), (NEEDLESS, N, ""), (END, N, "")]
    comps, kw = cols(*good, *bad)
    assert R.answer_correct(comps, **kw) == [1.0] * len(good) + [0.0] * len(bad)


def test_call_valid():
    comps = [CALC_OK, DATE_OK, NEEDLESS, CALC_BAD_JSON, CALC_UNKNOWN_TOOL, CALC_BAD_ARGS, CALC_REFUSED, DATE_BAD_DAYS,
             CHAT, DIRECT_NUMBER]
    assert R.call_valid(comps) == [1.0, 1.0, 1.0, -1.0, -1.0, -1.0, -1.0, -1.0, 0.0, 0.0]


def test_no_needless_call():
    comps, kw = cols((NEEDLESS, N, ""), (CALC_BAD_JSON, N, ""), (CHAT, N, ""), (CALC_OK, A, GA), (DATE_OK, D, GD))
    assert R.no_needless_call(comps, **kw) == [-1.0, -1.0, 0.0, 0.0, 0.0]


def test_format_penalty():
    assert R.format_penalty([CALC_OK, CHAT, CUT_OFF, AFTER_CALL, CHAT.replace(END, "</s>")]) == [0.0, 0.0, -1.0, -0.5, 0.0]


def test_conversational_completions_read_as_text():
    assert R.made_call([[{"role": "assistant", "content": CALC_OK}]]) == [1.0]


def test_the_naive_reward_pays_the_hack_and_the_checked_one_does_not():
    comps, kw = cols((NEEDLESS, N, ""), (CHAT, N, ""))
    naive, checked = R.total("naive", comps, **kw), R.total("checked", comps, **kw)
    assert naive[0] > naive[1], "naive: the needless call pays more than the direct answer"
    assert checked[0] < checked[1], "checked: the direct answer pays more than the needless call"
    # on tool questions the checked reward orders: right call > valid wrong call > no call > broken call
    comps, kw = cols((CALC_OK, A, GA), (CALC_WRONG_EXPR, A, GA), ("我不知道。" + END, A, GA), (CALC_BAD_JSON, A, GA))
    t = R.total("checked", comps, **kw)
    assert t[0] > t[1] > t[2] > t[3], t


def test_unknown_reward_is_refused_in_both_languages():
    from puyu_lab.errors import InputError
    from puyu_lab.rl.config import RLConfig

    with pytest.raises(InputError) as e:
        RLConfig(reward="hacked")
    assert "checked" in e.value.en and e.value.zh
    with pytest.raises(InputError):
        RLConfig(num_generations=1)
    assert RLConfig().output == "model/rl" and RLConfig(reward="naive").output == "model/rl-naive"


def test_figures_recompute_reward_and_spread():
    from puyu_lab.rl.figures import agree, per_step

    samples = [{"step": 1, "group": g, "kind": N, "completion": c, "reward": r, "rewards": {"answer_correct": r}}
               for g, c, r in [(0, CHAT, 1.0), (0, NEEDLESS, 0.0), (1, CHAT, 1.0), (1, CHAT, 1.0)]]
    (row,) = per_step(samples)
    assert row["reward"] == 0.75 and row["frac_reward_zero_std"] == 0.5 and row["notool_called"] == 0.25
    assert abs(row["group_std"] - 0.7071067811865476 / 2) < 1e-9 and abs(row["reward_std"] - 0.5) < 1e-9
    assert agree({"per_step": [{"step": 1, "reward": 0.75, "reward_std": 0.5}]}, samples) == []
    assert agree({"per_step": [{"step": 1, "reward": 0.9, "reward_std": row["reward_std"]}]}, samples)


def test_score_verb(tmp_path, capsys):
    from puyu_lab.cli import main

    f = tmp_path / "c.jsonl"
    f.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"completion": CALC_OK, "kind": A, "gold": GA}, {"completion": NEEDLESS, "kind": N}]), encoding="utf-8")
    assert main(["rl", "score", str(f)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "+1.50" in out[0] and "-0.50" in out[1], out
