"""The RL stage's prompts: asked in phrasings of its own (neither the fine-tune's nor the held-out ones), with the
numbers of sft/data's training conversations and never a held-out task; a GRPO group sampled outside training is
scored by the stage's rewards."""
import re

import pytest

from puyu_lab.contracts.tasks import (ARITHMETIC_QUESTION, ARITHMETIC_RL_FORMS, ARITHMETIC_UNSEEN_FORMS, DATE_QUESTION,
                                      DATE_RL_FORMS, DATE_UNSEEN_FORMS)
from puyu_lab.course.config import CourseConfig
from puyu_lab.finetune.data import ARITH_Q, DATE_Q
from puyu_lab.rl.config import TaskMix


def test_the_three_sets_of_phrasings_are_apart():
    sft_arith, sft_date = {ARITHMETIC_QUESTION, *ARITH_Q}, {DATE_QUESTION, *DATE_Q, *CourseConfig().sft_date_questions}
    for name, rl, sft, held in (("arithmetic", ARITHMETIC_RL_FORMS, sft_arith, ARITHMETIC_UNSEEN_FORMS),
                                ("date", DATE_RL_FORMS, sft_date, DATE_UNSEEN_FORMS)):
        assert not set(rl) & sft, f"{name}: an RL phrasing is one the fine-tune teaches"
        assert not set(rl) & set(held), f"{name}: an RL phrasing is a held-out one"
        assert not sft & set(held), f"{name}: a held-out phrasing is one the fine-tune teaches"
        assert len(set(rl)) == len(rl) >= 4
    for f in ARITHMETIC_RL_FORMS:
        assert f.format(e="3*4").count("3*4") == 1
    for f in DATE_RL_FORMS:
        q = f.format(date="2024-05-01", days=37)
        assert "2024-05-01" in q and "37" in q


def _ws(layers, tmp_path):
    return layers.workspace("sft", tmp_path / "ws")


@pytest.mark.slow
def test_training_tasks_are_rephrased_training_tasks_never_held_out(layers, tmp_path):
    from puyu_lab.artifacts import load_sft_data
    from puyu_lab.contracts.calculator import calculate
    from puyu_lab.contracts.dates import add_days
    from puyu_lab.models import course
    from puyu_lab.rl.tasks import training_tasks

    ws = _ws(layers, tmp_path)
    tasks = training_tasks(ws, TaskMix(arithmetic=6, date=4, notool=4))
    assert sorted(t["kind"] for t in tasks).count("arithmetic") == 6 and len(tasks) == 14
    forms = {"arithmetic": ARITHMETIC_RL_FORMS, "date": DATE_RL_FORMS}
    held_expr = {t["expression"] for t in course.heldout_tasks("arithmetic")} | {
        t["expression"] for t in load_sft_data(ws, "arithmetic_heldout")}
    held_date = {(t["date"], t["days"]) for t in course.heldout_tasks("date")}
    for t in tasks:
        assert t["prompt"][-1] == {"role": "user", "content": t["question"]}
        if t["kind"] == "notool":
            assert t["gold"] == "" and "trained_as" not in t
            continue
        assert t["question"] != t["trained_as"]
        pattern = next(f for f in forms[t["kind"]] if re.fullmatch(
            re.escape(f).replace(r"\{e\}", ".+").replace(r"\{date\}", ".+").replace(r"\{days\}", ".+"), t["question"]))
        assert pattern, t["question"]
        if t["kind"] == "arithmetic":
            expr = re.search(r"[\d(][\d+*/() -]*[\d)]", t["question"]).group(0).strip()
            assert expr not in held_expr and str(calculate(expr)) == t["gold"]
        else:
            date, days = re.search(r"\d{4}-\d{2}-\d{2}", t["question"]).group(0), int(
                re.search(r"(?<![\d-])(\d+)(?![\d-])", t["question"].replace(re.search(r"\d{4}-\d{2}-\d{2}", t["question"]).group(0), "")).group(1))
            assert (date, days) not in held_date and add_days(date, days)["date"] == t["gold"]


@pytest.mark.slow
def test_a_group_of_the_learners_model_is_scored_by_the_stages_rewards(layers, tmp_path):
    from puyu_lab.models import HFModel
    from puyu_lab.rl.groups import sample_groups
    from puyu_lab.rl.rewards import total
    from puyu_lab.rl.tasks import training_tasks

    ws = _ws(layers, tmp_path)
    tasks = training_tasks(ws, TaskMix(arithmetic=1, date=0, notool=1))
    with HFModel.load("model/sft", ws=ws) as m:
        groups = sample_groups(m, tasks, 4, max_new_tokens=12)
    assert len(groups) == 2
    for g in groups:
        assert len(g["completions"]) == len(g["rewards"]) == 4
        # the totals are the reward's own, recomputed
        assert g["rewards"] == total("checked", g["completions"], kind=[g["kind"]] * 4, gold=[g["gold"]] * 4)
        assert g["std"] >= 0 and set(g["parts"]) == {"answer_correct", "call_valid", "no_needless_call", "format_penalty"}
    # seeds differ per completion: sampled, not four copies of one greedy answer
    assert len({c for g in groups for c in g["completions"]}) > 2
