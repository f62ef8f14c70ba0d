"""The RL stage end to end at test size: 2 GRPO steps of trl on the shipped course assistant (the lab's policy) and on
the tiny chain's model/sft, through ``run`` (the same code path as the CLI and the lab), the artifact's manifest
holding trl's per-step reward / KL figures, those figures recomputed from the saved completions — and the report
card's checks of the RL lab doing the recomputing (each shown to fail on an edited file)."""
import json

import pytest

from puyu_lab.rl.config import RLConfig, TaskMix

SMALL = TaskMix(arithmetic=4, date=2, notool=4)


def small_cfg(**kw) -> RLConfig:
    return RLConfig(**{**dict(num_generations=4, prompts_per_step=2, max_steps=2, max_completion_tokens=16,
                              tasks=SMALL, progress_bar=False, bf16=False), **kw})


@pytest.mark.slow
def test_two_grpo_steps_write_the_figures(layers, tmp_path):
    from puyu_lab.rl import run
    from puyu_lab.rl.figures import agree

    ws = layers.workspace("sft", tmp_path / "ws")
    events = []
    res = run(ws, small_cfg(), on_event=events.append)  # the policy: the shipped course assistant
    assert res.steps == 2 and not res.stopped
    art = ws.get("model/rl")
    m = art.manifest["metrics"]
    assert m["reward"] == "checked" and m["steps"] == 2 and m["machine"]["cores"] >= 1 and m["seconds"] > 0
    steps = m["per_step"]
    assert [r["step"] for r in steps] == [1, 2]
    for r in steps:
        for k in ("reward", "reward_std", "frac_reward_zero_std", "kl", "mean_length", "rewards/answer_correct/mean"):
            assert isinstance(r[k], float), (k, r)
        assert r["mean_length"] <= 16
    assert art.manifest["params"]["config"]["num_generations"] == 4
    from puyu_lab.models import course
    assert art.manifest["params"]["policy"] == str(course.course_path("assistant"))  # no artifact: its folder
    assert [p["name"] for p in art.parents] == ["sft/data"]
    samples = [json.loads(x) for x in (art.path / "samples.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(samples) == 2 * 2 * 4  # steps × groups × group size
    assert {s["group"] for s in samples} == {0, 1}
    assert set(samples[0]["rewards"]) == {"answer_correct", "call_valid", "no_needless_call", "format_penalty"}
    assert agree(m, samples) == [], "trl's logged reward / reward_std are the saved completions' own"
    assert (art.path / "curve.json").is_file() and (art.path / "model.safetensors").is_file()
    kinds = [e.kind for e in events]
    assert "numerics" in kinds and kinds.count("rl") == 2 and kinds[-1] == "done"
    rl = next(e for e in events if e.kind == "rl")
    assert rl.data["groups"] and len(rl.data["groups"][0]["samples"]) == 4 and rl.data["group_std"] >= 0
    # the naive reward writes beside it, and pays only calls
    naive = run(ws, small_cfg(reward="naive", beta=0.0))
    assert naive.artifact.name == "model/rl-naive"
    assert all(set(s["rewards"]) == {"made_call"} for s in naive.samples)
    assert naive.metrics["kl_max"] is None  # beta 0: no reference model, no KL figure

    # the RL lab's checks recompute the figures from the saved completions
    from puyu_lab import checks

    def result(cid):
        return next(r for r in checks.run(ws, "05_rl").results if r.id == cid)

    assert result("rl.figures").ok
    assert result("rl.hacking").status != "missing" and result("rl.learned").status != "missing"
    f = art.path / "samples.jsonl"
    rows = [json.loads(x) for x in f.read_text(encoding="utf-8").splitlines()]
    rows[0]["rewards"]["answer_correct"] = 1.0 - rows[0]["rewards"]["answer_correct"]  # a reward the functions disagree with
    f.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    bad = result("rl.figures")
    assert not bad.ok and "sample 0" in str(bad.figure) + str(bad.detail)


@pytest.mark.slow
def test_the_learners_own_model_as_the_policy(layers, tmp_path):
    """model="model/sft": the same run on the learner's model, the artifact made from it."""
    from puyu_lab.rl import run

    ws = layers.workspace("sft", tmp_path / "ws")
    res = run(ws, small_cfg(model="model/sft", max_steps=1))
    assert sorted(p["name"] for p in res.artifact.parents) == ["model/sft", "sft/data"]
    assert "policy" not in res.artifact.manifest["params"]


@pytest.mark.slow
def test_the_hack_homework(layers, tmp_path):
    """作业 rl.hw_hack: missing before the task; the starter cell's reward ("pays any answer with a digit") pays a wrong
    completion of model/rl and passes; a completion model/rl never saved, or too few rows, fail."""
    from puyu_lab.rl import run

    from ..checks.homework_helpers import assert_missing, fails, result, run_cell, starter

    ws = layers.workspace("sft", tmp_path / "ws")
    assert_missing("05_rl", ws, "rl.hw_hack")
    run(ws, small_cfg(max_steps=2))
    run_cell(starter("05_rl", "rl.hw_hack"), {"ws": ws})
    r = result("05_rl", ws, "rl.hw_hack")
    scored = ws.get("homework/rl/hack").path / "scored.jsonl"
    rows = [json.loads(x) for x in scored.read_text(encoding="utf-8").splitlines()]
    holes = sum(row["mine"] > 0 for row in rows)  # the starter reward pays many; are any wrong?
    assert r.ok == any(row["mine"] > 0 and not _right(row) for row in rows), (r.figure, holes)
    rows[0]["completion"] += " 42"  # not a completion model/rl saved
    scored.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in rows), encoding="utf-8")
    assert "not model/rl's saved ones" in str(fails("05_rl", ws, "rl.hw_hack").figure_en)
    scored.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in rows[1:4]), encoding="utf-8")
    fails("05_rl", ws, "rl.hw_hack")


def _right(row) -> bool:
    from puyu_lab.rl.rewards import answer_correct

    return answer_correct([row["completion"]], [row["kind"]], [row["gold"]])[0] == 1.0
