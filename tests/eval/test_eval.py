"""Parity with lm-evaluation-harness (run for real), batch/cache invariance, task-file errors."""
import shutil

import pytest

from puyu_lab.errors import InputError
from puyu_lab.models import HFModel
from puyu_lab.eval.runner import evaluate
from puyu_lab.eval.tasks import Task, load_task_file
from .helpers import MAX_LEN, setup  # noqa: F401 (setup: a fixture)

pytestmark = pytest.mark.slow


def test_matches_lm_evaluation_harness(setup):
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    ws, model_dir, data = setup
    ref = simple_evaluate(model="hf", model_args=f"pretrained={model_dir},dtype=float32,max_length={MAX_LEN}",
                         tasks=["puyu_choice", "puyu_ppl"], task_manager=TaskManager(include_path=str(data)),
                         batch_size=1, device="cpu", log_samples=True)
    scorer = HFModel.load(model_dir, max_length=MAX_LEN)
    choice = load_task_file(data / "choice.jsonl", "choice")
    ppl = load_task_file(data / "ppl.jsonl", "perplexity")
    run = evaluate({"m": scorer}, [choice, ppl], progress_bar=False)
    ours = run.metrics["m"]
    theirs = ref["results"]
    # per-choice log-likelihoods
    worst = 0.0
    for s_ref, s in zip(sorted(ref["samples"]["puyu_choice"], key=lambda x: x["doc_id"]), run.samples["m"]["choice"]):
        ll_ref = [r[0][0] for r in s_ref["resps"]]
        worst = max(worst, max(abs(a - b) for a, b in zip(ll_ref, s["lls"])))
    print("max |log-likelihood difference| vs lm-eval:", worst)
    assert worst <= 1e-4
    # both reported, and really two metrics: acc takes the most likely choice, acc_norm the most likely
    # per character of the choice (lm-eval's normalisation), recomputed here from the per-choice lls
    samples = run.samples["m"]["choice"]
    best = [max(range(len(s["lls"])), key=lambda j: s["lls"][j]) for s in samples]
    best_norm = [max(range(len(s["lls"])), key=lambda j: s["lls"][j] / len(s["choices"][j])) for s in samples]
    flips = sum(a != b for a, b in zip(best, best_norm))
    print(f"length normalisation changes the prediction on {flips} of {len(samples)} docs")
    assert flips > 0, "the choice docs must tell acc from acc_norm (choices of different lengths)"
    assert [s["pred"] for s in samples] == best
    assert [s["acc_norm"] for s in samples] == [float(b == s["gold"]) for b, s in zip(best_norm, samples)], \
        "per-doc acc_norm is not the length-normalised argmax"
    assert ours["choice"]["acc"] == sum(b == s["gold"] for b, s in zip(best, samples)) / len(samples)
    assert ours["choice"]["acc_norm"] == sum(b == s["gold"] for b, s in zip(best_norm, samples)) / len(samples)
    assert ours["choice"]["acc"] == theirs["puyu_choice"]["acc,none"]
    assert ours["choice"]["acc_norm"] == theirs["puyu_choice"]["acc_norm,none"]
    for m in ("acc", "acc_norm"):  # the standard errors (the figure's 95 % intervals) are lm-eval's
        assert ours["choice"][f"{m}_stderr"] == pytest.approx(theirs["puyu_choice"][f"{m}_stderr,none"], rel=1e-9), m
    for m in ("word_perplexity", "byte_perplexity", "bits_per_byte"):
        assert ours["ppl"][m] == pytest.approx(theirs["puyu_ppl"][f"{m},none"], rel=1e-6), m
    n_windows = sum(1 for d in ppl.docs for _ in range(1 + max(0, len(scorer.encode(d["text"])) - 1) // MAX_LEN))
    assert n_windows > len(ppl.docs)  # documents longer than one window: the rolling path is exercised


def test_batch_size_and_cache_do_not_change_results(setup, tmp_path):
    ws, model_dir, data = setup
    tasks = [load_task_file(data / "choice.jsonl", "choice"), load_task_file(data / "ppl.jsonl", "perplexity"),
             Task("gen", "generation", [{"prompt": "中国", "answer": "的"}, {"prompt": "今天", "answer": "天"}],
                  chat=False, max_new_tokens=4)]
    one = HFModel.load(model_dir, max_length=MAX_LEN, batch_size=1)
    many = HFModel.load(model_dir, max_length=MAX_LEN, batch_size=7)
    r1 = evaluate({"m": one}, tasks, progress_bar=False)
    r7 = evaluate({"m": many}, tasks, progress_bar=False)
    assert r1.metrics == r7.metrics or all(
        r1.metrics["m"][t][k] == pytest.approx(r7.metrics["m"][t][k], rel=1e-9) for t in r1.metrics["m"] for k in r1.metrics["m"][t])
    # the same log-likelihoods to fp32's rounding: padding changes only the order of a sum (a few ulps; an ulp of a
    # sum near -200 is 1.5e-5, so the bound is relative), a padding leak would move them by far more
    d = max(abs(a - b) / max(1.0, abs(a)) for s1, s7 in zip(r1.samples["m"]["choice"], r7.samples["m"]["choice"])
            for a, b in zip(s1["lls"], s7["lls"]))
    assert d <= 1e-6, d
    assert [s["pred"] for s in r1.samples["m"]["choice"]] == [s["pred"] for s in r7.samples["m"]["choice"]]
    cached = HFModel.load(model_dir, max_length=MAX_LEN, batch_size=7)
    cached.use_cache(tmp_path / "cache.json")
    first = evaluate({"m": cached}, tasks, progress_bar=False)
    again = HFModel.load(model_dir, max_length=MAX_LEN, batch_size=7)
    again.use_cache(tmp_path / "cache.json")
    second = evaluate({"m": again}, tasks, progress_bar=False)
    assert second.metrics == first.metrics and second.samples == first.samples
    assert again.stats["requests"] == 0 and again.stats["cached"] > 0  # nothing recomputed


def test_malformed_task_files_name_line_and_field(tmp_path):
    f = tmp_path / "t.jsonl"
    f.write_text('{"context": "q", "choices": ["a", "b"], "gold": 1}\n'
                 '{"context": "q", "choices": ["a"], "gold": 0}\n'
                 '{"context": "q", "choices": ["a", "b"], "gold": 2}\n'
                 'not json\n'
                 '{"choices": ["a", "b"], "gold": 0}\n', encoding="utf-8")
    with pytest.raises(InputError) as e:
        load_task_file(f, "choice")
    msg = str(e.value)
    assert "4 bad line(s)" in msg and "line 2: field 'choices'" in msg and "line 3: field 'gold'" in msg
    assert "line 4: invalid JSON" in msg and "line 5: field 'context'" in msg
    g = tmp_path / "g.jsonl"
    g.write_text('{"prompt": "1+1", "answer": 2}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"line 1: field 'answer' is missing or not a string"):
        load_task_file(g, "generation")
    with pytest.raises(InputError, match="unknown task kind"):
        load_task_file(g, "essay")


def test_tool_use_scores_the_tool_a_reply_calls():
    from puyu_lab.contracts.protocol import called_tool
    from puyu_lab.eval.tasks import Task, score_generation
    from puyu_lab.models.template import tool_call

    call = tool_call("calculator", {"expression": "2*3"})
    assert called_tool("Let me use the calculator." + call) == "calculator"
    assert called_tool("结果是 6。") == "none"
    assert called_tool("<|action_start|><|plugin|>\n{broken") == "invalid"
    task = Task("tool_use", "generation", [], match="tool", keep_special=True)
    assert score_generation(task, call, "calculator") == 1.0 and score_generation(task, call, "none") == 0.0
    assert score_generation(task, "我是小浦。", "none") == 1.0
    assert task.signature() != Task("tool_use", "generation", [], match="tool").signature()
