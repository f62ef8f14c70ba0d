"""The GRPO panel (puyu_lab/panels/rl.py): fed the events the rl engine emits (puyu_lab/rl/train.py), through the
panel's worker thread as in the lab, it draws the reward with its within-group band, the KL, the shares, and the
last step's groups, escaped, best first."""
import html

import pytest

from puyu_lab.events import Emitter

CALL = '<|action_start|><|plugin|>\n{"name": "calculator", "parameters": {"expression": "6*7"}}<|action_end|><|im_end|>'


def sample(text, correct, valid, needless=0.0):
    rewards = {"answer_correct": correct, "call_valid": valid, "no_needless_call": needless}
    return {"completion": text, "reward": correct + 0.5 * valid + needless, "rewards": rewards}


def groups(step):
    return [{"question": "6*7 等于多少？", "kind": "arithmetic", "gold": "42",
             "samples": [sample(f"step {step}: 大概是 40。<|im_end|>", 0.0, 0.0), sample(CALL, 1.0, 1.0)]},
            {"question": "你好，介绍一下你自己", "kind": "notool", "gold": "",
             "samples": [sample("我是课程助手。<|im_end|>", 1.0, 0.0), sample("我是课程助手！<|im_end|>", 1.0, 0.0)]}]


def run_engine(steps):
    """What puyu_lab.rl.run emits, in its order: numerics, data, the trainer's begin/log, one ``rl`` per step, end,
    done."""
    def run(on_event, stop):
        em = Emitter("rl", on_event)
        em.emit("numerics", dtype="float32", summary="float32 (cpu)")
        em.emit("data", reward=steps[0].get("reward_name", "checked"), prompts=12, arithmetic=4, date=4, notool=4)
        em.emit("begin", max_steps=len(steps), step=0, history=[], tokens_per_step=0)
        for i, s in enumerate(steps, 1):
            em.emit("log", step=i, max_steps=len(steps), loss=0.01 * i, learning_rate=1e-6, grad_norm=0.5,
                    tokens_per_s=100.0, eta_s=1.0, elapsed_s=float(i), extra={"rewards/answer_correct/mean": 0.5})
            em.emit("rl", step=i, max_steps=len(steps), reward=s["reward"], reward_std=0.4, group_std=s["group_std"],
                    correct=s["correct"], notool_called=s["notool_called"], kl=s["kl"], mean_length=30.0,
                    extra={"reward": s["reward"], "frac_reward_zero_std": 0.5}, groups=s["groups"])
        em.emit("end", step=len(steps), max_steps=len(steps), stopped=False)
        em.emit("done", steps=len(steps))
        assert not em.errors, em.errors  # the panel raised on an event
        return "result"
    return run


def test_checked_run_draws_curves_and_the_last_steps_groups():
    from puyu_lab.panels.rl import RLPanel

    steps = [{"reward": 0.2 * i, "group_std": 0.1 * i, "correct": 0.25 * i, "notool_called": None if i == 2 else 0.5,
              "kl": 0.001 * i, "groups": groups(i)} for i in (1, 2, 3)]
    panel = RLPanel("GRPO · checked reward")
    assert panel.start(run_engine(steps)) is panel
    assert panel.wait(timeout=10) == "result"
    fig = panel.rl_fig
    assert panel.rl_points == {"band": 3, "reward": 3, "kl": 3, "correct": 3, "notool_called": 2}
    assert list(fig.data[2].x) == [1, 2, 3] and list(fig.data[2].y) == pytest.approx([0.2, 0.4, 0.6])
    assert list(fig.data[0].y) == pytest.approx([0.1, 0.2, 0.3])  # the band: reward ± group_std
    assert list(fig.data[1].y) == pytest.approx([0.3, 0.6, 0.9])
    assert list(fig.data[3].y) == pytest.approx([0.001, 0.002, 0.003])
    assert list(fig.data[5].x) == [1, 3] and tuple(fig.layout.yaxis3.range) == (0, 1.02)
    assert panel.points["train"] == 3 and panel.progress.value == 3  # the trainer's own events still drawn
    page = panel.groups_html.value
    # only the last step's groups, the completion escaped with its markers shown, best first, every reward
    assert "step 3: " in page and "step 2: " not in page and panel.groups_step == 3
    assert "&lt;|action_start|&gt;" in page and "<|action_start|>" not in page
    assert html.escape('"expression": "6*7"', quote=True) in page
    assert page.index("&lt;|plugin|&gt;") < page.index("step 3: 大概是 40")
    assert "+1.50" in page and "answer_correct" in page and "call_valid" in page and "+0.50" not in page
    assert "6*7 等于多少？" in page and "<code>42</code>" in page
    assert page.count("<table") == 2 and ("teaches nothing" in page or "学习信号" in page)  # the flat notool group
    stats = panel.rl_stats.value
    assert "<b>+0.600</b>" in stats and "<b>75%</b>" in stats and "<b>50%</b>" in stats and "12" in stats


def test_naive_run_without_correct_and_kl_draws():
    from puyu_lab.panels.rl import RLPanel

    steps = [{"reward": 1.0, "group_std": 0.0, "correct": None, "notool_called": 1.0, "kl": None, "groups": groups(i),
              "reward_name": "naive"} for i in (1, 2)]
    panel = RLPanel("GRPO · naive reward")
    panel.start(run_engine(steps))
    panel.wait(timeout=10)
    assert panel.error is None
    assert panel.rl_points == {"band": 2, "reward": 2, "kl": 0, "correct": 0, "notool_called": 2}
    assert "β=0" in panel.rl_fig.layout.annotations[1].text
    assert "naive" in panel.rl_stats.value or "朴素" in panel.rl_stats.value
    assert "KL" not in panel.rl_stats.value


def test_completions_are_escaped_and_cut():
    from puyu_lab.panels.rl import LIMIT, RLPanel, completion_html

    evil = "<script>alert('x')</script>" + "<|im_end|>"
    panel = RLPanel()
    Emitter("rl", panel).emit("rl", step=1, max_steps=1, reward=0.0, reward_std=0.0, group_std=0.0, correct=0.0,
                              notool_called=None, kl=0.0, mean_length=5.0, extra={},
                              groups=[{"question": "<b>q</b>", "kind": "date", "gold": "2024-01-02",
                                       "samples": [sample(evil, 0.0, 0.0)]}])
    panel.flush()
    page = panel.groups_html.value
    assert "<script>" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "<b>q</b>" not in page and "&lt;b&gt;q&lt;/b&gt;" in page
    long = completion_html("a" * (LIMIT + 37))
    assert "a" * LIMIT in long and "a" * (LIMIT + 1) not in long and "37" in long


@pytest.mark.parametrize("language", ["zh", "en"])
def test_labels_follow_the_course_language(language):
    from puyu_lab.i18n import get_language, set_language
    from puyu_lab.panels.rl import RLPanel

    before = get_language()
    set_language(language)
    try:
        title = RLPanel().rl_fig.layout.annotations[0].text
    finally:
        set_language(before)
    assert title == ("平均奖励 ± 组内标准差" if language == "zh" else "mean reward ± within-group std")
