"""Every lab in labs/ runs top to bottom headless with the quick profile, in order.

Labs are discovered, not listed: a new notebook is executed here (and in CI) from the day it lands.
The labs share one workspace, as in ``make chain``, because each lab reads what the previous made
(the session-wide ``chain`` fixture of conftest.py, which the browser tests reuse).

Discovery and each lab's required sections are checked without running anything (fast tests);
only ``test_lab_runs`` executes the notebooks.
"""
import functools
import json
import math
import re

import pytest

from puyu_lab.labrunner import discover
from puyu_lab.stages import STAGES

from .conftest import ROOT

LABS = discover(ROOT / "labs")


def _cells(nb):
    return json.loads(nb.read_text(encoding="utf-8"))["cells"]


def _text(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def test_labs_are_discovered():
    """Every notebook in labs/ is found, in order: the tour, then one lab per stage, in chain order."""
    names = [p.name for p in LABS]
    on_disk = sorted(p.name for p in (ROOT / "labs").glob("*.ipynb"))
    assert names == on_disk, "every notebook in labs/ must be a discoverable lab named NN_name.ipynb"
    assert names == ["00_tour.ipynb"] + [s.lab for s in STAGES], "the tour, then each stage's lab in chain order"
    assert [int(n[:2]) for n in names] == list(range(len(names))), "lab numbers run 00, 01, … without gaps"
    assert discover() == LABS  # the default folder is this checkout's labs/


def test_discover_picks_lab_notebooks_only_in_number_order(tmp_path):
    for name in ("10_late.ipynb", "02_b.ipynb", "01_a.ipynb", "scratch.ipynb", "1_short.ipynb",
                 "03-dash.ipynb", "04_notes.md", "Untitled.ipynb"):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in discover(tmp_path)] == ["01_a.ipynb", "02_b.ipynb", "10_late.ipynb"]


@pytest.mark.parametrize("nb", LABS, ids=[p.stem for p in LABS])
def test_lab_has_the_required_sections(nb):
    """Each lab opens with its title, goal, time and needs (a stage lab: what it makes), has one
    parameters cell under its heading, ends with a self-check and a go-further section, and
    records its key figures."""
    cells = _cells(nb)
    head = _text(cells[0])
    assert cells[0]["cell_type"] == "markdown"
    assert head.startswith(f"# {nb.name[:2]} · "), f"{nb.name}: the first cell starts with '# {nb.name[:2]} · <title>'"
    for field in ("**Goal.**", "**Time (quick profile):**", "**Needs:**"):
        assert field in head, f"{nb.name}: the opening cell lacks {field}"
    stage = next((s for s in STAGES if s.lab == nb.name), None)
    if stage is not None:
        title = head.splitlines()[0]
        assert stage.zh in title and stage.en in title, f"{nb.name}: title {title!r} names stage {stage.title!r}"
        assert "**Makes:**" in head, f"{nb.name}: the opening cell lacks **Makes:**"
        for art in stage.produces:
            assert f"`{art}" in head, f"{nb.name}: the opening cell does not name what it makes: `{art}` (stages.py)"
    headings = [ln for c in cells if c["cell_type"] == "markdown" for ln in _text(c).splitlines()
                if ln.startswith("## ")]
    where = {}
    for h in ("## 参数 Parameters", "## 自检 Self-check", "## 更进一步 Go further", "## 作业 Homework"):
        at = [i for i, x in enumerate(headings) if x.startswith(h)]
        assert at, f"{nb.name}: no section {h!r} (sections: {headings})"
        where[h] = at[0]
    assert where["## 参数 Parameters"] == 0, f"{nb.name}: the parameters come first ({headings})"
    assert where["## 自检 Self-check"] < where["## 更进一步 Go further"] < where["## 作业 Homework"] \
        == len(headings) - 1, f"{nb.name}: the lab ends with its self-check, go-further, then homework ({headings})"
    hw = [c for c in cells if "homework" in c.get("metadata", {}).get("tags", [])]
    assert hw, f"{nb.name}: its 作业 tasks' starter cells carry the tag 'homework' (the headless chain skips them)"
    assert any("checks.homework(" in _text(c) for c in cells if c["cell_type"] == "code"
               and "homework" not in c.get("metadata", {}).get("tags", [])), \
        f"{nb.name}: the 作业 section ends with an untagged checks.homework(...) cell (its card runs in the chain)"
    tagged = [i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{nb.name} needs one cell tagged 'parameters'"
    p = tagged[0]
    # the defaults come from the environment (PUYU_LAB_PROFILE / PUYU_LAB_LANG, as the tour documents); papermill
    # (make chain) injects its own values in a cell after this one
    assert cells[p]["cell_type"] == "code" and re.search(
        r'^profile = os\.environ\.get\("PUYU_LAB_PROFILE", "quick"\)$', _text(cells[p]), re.M), \
        f'{nb.name}: the parameters cell sets profile = os.environ.get("PUYU_LAB_PROFILE", "quick")'
    assert re.search(r'^language = os\.environ\.get\("PUYU_LAB_LANG"\)  #', _text(cells[p]), re.M), \
        f'{nb.name}: the parameters cell sets language = os.environ.get("PUYU_LAB_LANG") (unset: the system\'s language)'
    assert re.search(r"^import os$", _text(cells[p]), re.M), f"{nb.name}: the parameters cell imports os"
    assert "## 参数 Parameters" in _text(cells[p - 1]), f"{nb.name}: the parameters cell follows its heading"
    assert any("record_figures(" in _text(c) for c in cells[p + 1:] if c["cell_type"] == "code"), \
        f"{nb.name} should record its key figures (puyu_lab.labrunner.record_figures)"


@pytest.mark.parametrize("nb", LABS, ids=[p.stem for p in LABS])
@pytest.mark.notebook
@pytest.mark.slow
def test_lab_runs(nb, chain):
    res = chain.run(nb)
    assert res.ok, res.error
    assert res.figures, f"{nb.name} should record its key figures (puyu_lab.labrunner.record_figures)"
    # a figure is a real number: a NaN or an infinity is a measurement gone wrong (the checks passed regardless)
    broken = {k: v for k, v in res.figures.items() if isinstance(v, float) and not math.isfinite(v)}
    assert not broken, f"{nb.name} recorded figures that are not finite: {broken}"
    # each figure within its bound (FIGURE_BOUNDS), and none recorded without one
    figures = Figures(res.figures)
    FIGURE_BOUNDS[nb.stem](figures)
    unbounded = sorted(set(res.figures) - figures.read)
    assert not unbounded, f"{nb.name} recorded figures no bound reads: {unbounded} (bound them in FIGURE_BOUNDS)"
    # its report opens offline: every panel as it ended (a snapshot per widget output), no CDN script
    page = res.executed.with_suffix(".html").read_text(encoding="utf-8")
    for bad in ("could not render", "(no snapshot:", "(an interactive widget", "cdnjs.cloudflare.com/ajax/libs/require",
                "unpkg.com/@jupyter-widgets"):
        assert bad not in page, f"{res.executed.with_suffix('.html')}: {bad!r}"
    if "puyu-plot" in page:
        assert (res.executed.parent / "plotly.min.js").is_file()


# ---- what each lab's figures must be ----------------------------------------------------------------------------------
# Every figure a lab records (puyu_lab.labrunner.record_figures) has a bound that a wrong result fails: the threshold
# of the lab's self-check where one measures it (puyu_lab/checks/labs/<stage>.py), else what the figure is (a
# fraction, a size down the ladder, a loss below uniform guessing). test_lab_runs holds the chain's figures to them.
PROFILE = "quick"  # the profile the chain runs with (conftest.Chain)


class Figures(dict):
    """A lab's recorded figures, remembering which ones a bound read."""

    def __init__(self, figures: dict):
        super().__init__(figures)
        self.read: set[str] = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def like(self, prefix: str) -> dict:
        """The figures whose names start with ``prefix``."""
        return {k: self[k] for k in list(self) if k.startswith(prefix)}


def _fractions(f: Figures, *keys: str) -> None:
    for k in keys:
        assert 0 <= f[k] <= 1, f"{k} = {f[k]} is not a share"


@functools.cache
def _vocab() -> int:
    from puyu_lab.pretrain.config import PretrainConfig

    return PretrainConfig.for_profile(PROFILE).preset.vocab_size


@functools.cache
def _parameters_m() -> float:
    """The profile's model's parameters in millions, counted on the transformers model built from its preset (on the
    meta device: no weights)."""
    import torch
    from transformers import AutoModelForCausalLM

    from puyu_lab.pretrain.config import PretrainConfig
    from puyu_lab.pretrain.model import llama_config

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(llama_config(PretrainConfig.for_profile(PROFILE).preset))
    return round(sum(p.numel() for p in model.parameters()) / 1e6, 2)


def _tour(f: Figures) -> None:
    assert f["ready"] is True, "tour.ready: every required doctor check passes"
    assert "quick" in f["profiles"].split(", "), f"tour.quick: the quick profile fits ({f['profiles']!r})"


def _data(f: Figures) -> None:
    from puyu_lab.checks.labs.data import MIN_DOCS
    from puyu_lab.data.filters import Recipe

    assert MIN_DOCS < f["docs_kept"] < f["docs_raw"], "data.size: more than MIN_DOCS kept, and the rules drop some"
    shortest = min(Recipe().threshold("gopher_short_doc", lang) for lang in ("zh", "en"))  # the default recipe's
    assert f["kept_chars"] >= shortest * f["docs_kept"], f"no kept document is under {shortest} characters"
    assert 0 < f["near_dup_clusters"] < f["docs_raw"], "the sources hold near-duplicates, fewer clusters than documents"


def _pretrain(f: Figures) -> None:
    from puyu_lab.budget import CEILING, floor_steps
    from puyu_lab.checks.labs.pretrain import LOSS_FALL
    from puyu_lab.pretrain.config import PretrainConfig

    cfg = PretrainConfig.for_profile(PROFILE)
    log_v = math.log(_vocab())
    assert f["eval_loss"] <= f["eval_loss_first"] * (1 - LOSS_FALL), "pretrain.loss: the held-out loss fell ≥ 30 %"
    assert 0 < f["eval_loss"] < log_v, "a trained model's loss is below uniform guessing (log V)"
    assert 0 < f["bits_per_byte"] < 8, "below 8 bits per byte: the model compresses the text"
    assert floor_steps(cfg.min_steps, cfg.max_steps) <= f["steps"] <= CEILING * cfg.max_steps, "the budget's steps"
    assert 0 < f["mfu"] < 1, "model FLOP utilisation is a share of the machine's peak"
    assert f["params_M"] == _parameters_m(), "the parameters of the profile's preset"
    assert abs(f["copy_gain"]) < log_v, "a copying gain within log V nats/token"
    # pretrain.course_copies: the shipped course base copies (issue #37: ≥ 4 nats/token, ≥ 80 % of runs)
    from puyu_lab.models.course import MIN_COPIED, MIN_COPY_GAIN

    assert f["course_base_copy_gain"] >= MIN_COPY_GAIN and f["course_base_copied"] >= MIN_COPIED
    assert f["lesson_steps"] > 0 and f["lesson_seconds"] > 0
    cliff = f["lesson_cliff_step"]
    assert cliff is None or 0 < cliff <= f["lesson_steps"], "the cliff comes within the lesson's steps"
    _fractions(f, "lesson_best_head_score")
    if cliff is not None:  # an induction head formed: a head attends where one does (tests/pretrain/test_lesson.py)
        assert f["lesson_best_head_score"] > 0.3


def _finetune(f: Figures) -> None:
    assert f["method"] in ("full", "lora", "qlora")
    assert f["selfcog_heldout"] >= 0.9, "finetune.selfcog: ≥ 90 % of the held-out paraphrases answered with the name"
    assert 0 <= f["base_selfcog"] < f["selfcog_heldout"], "the base model never heard the name"
    _fractions(f, "control_collapse")
    assert 0 < f["eval_loss"] < math.log(_vocab()), "a trained model's loss is below uniform guessing (log V)"
    assert 0 < f["qlora_state_mb"] < f["lora_state_mb"], "QLoRA's 4-bit base holds less than LoRA's"
    if f["method"] == "full":
        assert f["lora_state_mb"] < f["train_state_mb"], "a full fine-tune holds Adam state for every weight"
    assert f["train_state_mb"] > 0 and f["seconds"] > 0
    assert 0 <= f["merge_max_diff"] < 1e-4, "merged = adapter (the lab's own allowance)"


def _preference(f: Figures) -> None:
    from puyu_lab.preference.config import PrefConfig

    _fractions(f, "pref_acc_sft", "pref_acc_dpo", "pref_acc_orpo")
    assert f["pref_acc_sft"] < f["pref_acc_dpo"], "preference.dpo: DPO ranks more held-out pairs right than SFT"
    by_source = f.like("dpo_")
    by_source = {k: v for k, v in by_source.items() if k not in ("dpo_seconds", "dpo_steps")}
    _fractions(f, *by_source)
    assert min(by_source.values()) - 1e-3 <= f["pref_acc_dpo"] <= max(by_source.values()) + 1e-3, \
        "all held-out pairs' accuracy lies between the sources'"
    assert f["dpo_steps"] >= PrefConfig.for_profile(PROFILE).min_steps, "the budget buys at least the floor's steps"
    assert f["dpo_seconds"] > 0 and f["orpo_seconds"] > 0


def _deploy(f: Figures) -> None:
    from puyu_lab.checks.labs.deploy import Q4_KL_BOUND
    from puyu_lab.deploy.quantize import LADDER

    sizes = f.like("MB_")
    ladder = [sizes[f"MB_{lv}"] for lv in LADDER if f"MB_{lv}" in sizes]
    assert len(ladder) >= 3 and all(a > b > 0 for a, b in zip(ladder, ladder[1:])), f"deploy.ladder: {ladder}"
    for k, mb in sizes.items():
        if k.endswith("+imatrix") and k[:-len("+imatrix")] in sizes:  # the same tensor types: the same size
            assert abs(mb - sizes[k[:-len("+imatrix")]]) <= 0.02, k
    if "MB_IQ2_XS+imatrix" in sizes:
        assert sizes["MB_IQ2_XS+imatrix"] < sizes["MB_Q2_K"], "an i-quant below Q2_K"
    assert 0 < f["kl_Q4_K_M"] < min(Q4_KL_BOUND, f["kl_Q2_K"]), "deploy.kl: Q4_K_M < Q2_K, and under the bound"
    _fractions(f, *f.like("task_acc_"))
    assert f["decode_tps_Q4_K_M"] > 0 and f["decode_tps_reference"] > 0
    assert f["server_tokens_per_s_8_clients"] > 0 and f["llama_server_tokens_per_s_4_clients"] > 0
    # a ratio of two measured throughputs: positive and finite here; whether batching pays is a speed claim, made by
    # `make bench` (bench_deploy), never by a test — on a busy CPU it fell to 0.46 (Q4_K_M's K-quant rows are
    # multiplied per sequence: the lab itself says batching gains little there)
    for k, ratio in f.like("llama_server_4_vs_1_").items():
        assert 0 < ratio < 100, f"{k}: {ratio}"


_EVAL_FIGURE = re.compile(r"(?P<model>.+?)_(?P<task>news_ppl|sentiment|selfcog|dialog|arithmetic|tool_use|pref_[a-z]+)")


def _eval(f: Figures) -> None:
    tasks = {}
    for k in list(f):
        m = _EVAL_FIGURE.fullmatch(k)
        assert m, f"{k}: not <model>_<task>"
        tasks.setdefault(m["model"], set()).add(m["task"])
        if m["task"] == "news_ppl":
            assert 0 < f[k] < 8, f"{k}: bits per byte below the raw 8"
        else:
            _fractions(f, k)
    assert len(tasks.get("base", ())) >= 3 and len(tasks.get("sft", ())) >= 3, "eval.models: base and SFT, ≥ 3 tasks"
    assert f["sft_selfcog"] > f["base_selfcog"], "eval.selfcog: SFT learned its name"
    assert f["sft_sentiment"] > f["base_sentiment"], "eval.sentiment: SFT helps on sentiment"


def _agent(f: Figures) -> None:
    # each kind's share solved, with the tools and directly, and the GGUF levels' (Q4_K_M_arithmetic_with_tools …)
    _fractions(f, *(k for k in list(f) if k.endswith(("_with_tools", "_direct")) and k != "notool_with_tools"))
    assert f["notool_with_tools"] >= 0.6, "agent.notool: no tool on ≥ 60 % of the questions that need none"
    assert f["call_valid"] is None or 0 <= f["call_valid"] <= 1
    assert f["constrained_call_valid"] >= 0.95, "agent.constrained: ≥ 95 % of the constrained calls valid"
    assert 0 < f["p_action_start"] < 1
    assert abs(f["copy_gain"]) < math.log(_vocab()), "a copying gain within log V nats/token"
    # the shipped course assistant (agent.course's bars) and its copy probe beside the learner's
    assert f["course_arithmetic_with_tools"] >= 0.8 and f["course_date_with_tools"] >= 0.6, "agent.course"
    assert f["course_notool_with_tools"] >= 0.9, "agent.course: no needless call on ≥ 90 %"
    assert f["course_copy_gain"] > f["copy_gain"] + 1 and 0 <= f["course_copied"] <= 1
    # GRPO's model/rl on the same held-out tasks (agent.rl's bars)
    from puyu_lab.checks.labs.agent import RL_CEILING, RL_GAIN, RL_HIGH, RL_NOTOOL

    for k in ("arithmetic", "date"):
        before, after = f[f"course_{k}_with_tools"], f[f"rl_{k}_with_tools"]
        assert after >= before + RL_GAIN - 1e-9 or (before > RL_HIGH and after >= RL_CEILING), f"agent.rl: {k}"
    assert f["rl_notool_with_tools"] >= RL_NOTOOL, "agent.rl: no needless call on ≥ 90 %"


def _rl(f: Figures) -> None:
    from puyu_lab.checks.labs.rl import KL_BOUND

    assert f["rl_steps"] >= 1 and f["naive_steps"] >= 1 and f["rl_seconds"] > 0 and f["naive_seconds"] > 0
    assert 0 <= f["rl_kl_max"] <= KL_BOUND, "rl.learned: the KL to the reference stays bounded"
    assert f["rl_tool_correct_last"] > f["rl_tool_correct_first"], "rl.learned: the tool questions answered right rose"
    assert all(-2.5 <= f[k] <= 1.5 for k in ("rl_reward_first", "rl_reward_last"))  # the checked reward: −2.5 … 1.5
    _fractions(f, "rl_tool_correct_first", "rl_tool_correct_last", "rl_correct_last", "rl_notool_called_last", "naive_notool_called_first", "naive_notool_called_last")
    assert f["naive_notool_called_last"] > max(f["naive_notool_called_first"], f["rl_notool_called_last"]), \
        "rl.hacking: the naive reward teaches needless calls"


def _rag(f: Figures) -> None:
    for mode in ("hybrid", "sparse", "dense"):
        hit5, mrr = f[f"{mode}_hit@5"], f[f"{mode}_mrr"]
        _fractions(f, f"{mode}_hit@5")
        # a hit within 5 adds at least 1/5 to the mean reciprocal rank, a question ranked lower at most 1/6
        assert hit5 / 5 - 1e-3 <= mrr <= hit5 + (1 - hit5) / 6 + 1e-3, f"{mode}: MRR {mrr} with hit@5 {hit5}"
    assert f["hybrid_hit@5"] >= max(f["sparse_hit@5"], f["dense_hit@5"]), "rag.hybrid: hybrid ≥ either retriever"
    _fractions(f, "refusal_precision", "refusal_recall", "answer_rag_free", "answer_none", "answer_chance")
    assert 0 < f["threshold"] < math.inf, "a BM25 top score (≥ 0): at 0 the threshold would refuse nothing"
    assert f["answer_none"] < f["answer_rag"] <= f["answer_in_passage"] + 1e-3 <= 1 + 1e-3, \
        "rag.grounded: retrieval helps, up to the extractive reader's ceiling"
    assert f["answer_chance"] <= f["answer_in_passage"], "a random pick is right no more often than the ceiling"
    assert f["chunks"] > 0 and f["seconds"] > 0
    # rag.course: the shipped course assistant reads the same passages and writes the answer itself
    assert f["course_answer_rag_free"] >= 0.6 and \
        f["course_answer_rag_free"] > max(f["answer_chance"], f["course_answer_none"])
    _fractions(f, "course_answer_rag")


FIGURE_BOUNDS = {"00_tour": _tour, "01_data": _data, "02_pretrain": _pretrain, "03_finetune": _finetune,
                 "04_preference": _preference, "05_rl": _rl, "06_deploy": _deploy, "07_eval": _eval, "08_agent": _agent,
                 "09_rag": _rag}

# a quick chain's figures (test-artifacts/chain-summary.txt; lab 09's two baselines as its cell computes them on
# workspace/): the bounds' own test input
CHAIN_FIGURES = {
    "00_tour": dict(ready=True, profiles="quick, full"),
    "01_data": dict(docs_raw=7602, docs_kept=4546, kept_chars=1859626, near_dup_clusters=262),
    "02_pretrain": dict(eval_loss_first=8.346, eval_loss=5.261, bits_per_byte=2.175, steps=400, mfu=0.188, params_M=5.2,
                        copy_gain=0.106, course_base_copy_gain=8.283, course_base_copied=0.875, lesson_cliff_step=1200, lesson_steps=1500, lesson_seconds=143,
                        lesson_best_head_score=0.877),
    "03_finetune": dict(method="full", selfcog_heldout=1, base_selfcog=0, control_collapse=0.5, eval_loss=1.324,
                        train_state_mb=79.29, seconds=227.5, lora_state_mb=42.98, qlora_state_mb=32.48,
                        merge_max_diff=1.05e-05),
    "04_preference": dict(pref_acc_sft=0.731, pref_acc_dpo=0.798, pref_acc_orpo=0.705, dpo_identity=1,
                          dpo_sentiment=0.633, dpo_tool=1, dpo_notool=0.528, dpo_seconds=92.1, orpo_seconds=44.7,
                          dpo_steps=70),
    "05_rl": dict(rl_steps=43, rl_seconds=71.6, rl_kl_max=0.1776, rl_reward_first=1.125, rl_reward_last=1.239,
                  rl_correct_last=0.942, rl_tool_correct_first=0.812, rl_tool_correct_last=0.947,
                  rl_notool_called_last=0.031, naive_steps=26, naive_seconds=40.4, naive_notool_called_first=0.023,
                  naive_notool_called_last=0.523),
    "06_deploy": {"MB_F32": 19.9, "MB_F16": 9.99, "MB_Q8_0": 5.35, "MB_Q6_K": 4.15, "MB_Q5_K_M": 3.68, "MB_Q4_K_M": 3.24,
                  "MB_Q3_K_M": 2.75, "MB_Q2_K": 2.31, "MB_Q4_K_M+imatrix": 3.24, "MB_Q3_K_M+imatrix": 2.75,
                  "MB_Q2_K+imatrix": 2.31, "MB_IQ2_XS+imatrix": 1.95, "kl_Q4_K_M": 0.005038, "kl_Q2_K": 0.05691,
                  "task_acc_F32": 0.75, "task_acc_Q4_K_M": 0.75, "task_acc_Q2_K": 0.733, "decode_tps_Q4_K_M": 1966,
                  "decode_tps_reference": 949, "server_tokens_per_s_8_clients": 561,
                  "llama_server_tokens_per_s_4_clients": 1593, "llama_server_4_vs_1_Q8_0": 1.9,
                  "llama_server_4_vs_1_Q4_K_M": 1.97},
    "07_eval": {f"{m}_{t}": v for m, row in {
        "base": (2.162, 0.45, 0, 0.175, 0, 0.25, 0.333, 0.533, 0, 1),
        "sft": (3.036, 0.575, 1, 0.175, 0, 0.75, 1, 0.65, 0.871, 0.444),
        "dpo": (3.063, 0.55, 1, 0.15, 0, 0.7, 1, 0.633, 1, 0.528),
        "sft-Q4_K_M": (3.036, 0.575, 1, 0.175, 0, 0.75, 1, 0.667, 0.871, 0.444),
        "rl": (2.964, 0.729, 1.0, 0.133, 0.0, 1.0, 1.0, 0.733, 1.0, 0.639),
        "course-assistant": (2.943, 0.708, 1.0, 0.133, 0.0, 1.0, 1.0, 0.75, 1.0, 0.639)}.items()
        for t, v in zip(("news_ppl", "sentiment", "selfcog", "dialog", "arithmetic", "tool_use", "pref_identity",
                         "pref_sentiment", "pref_tool", "pref_notool"), row)},
    "08_agent": dict(arithmetic_with_tools=0, arithmetic_direct=0, date_with_tools=0, date_direct=0,
                     notool_with_tools=0.925, call_valid=1, p_action_start=0.2344, constrained_call_valid=1,
                     Q4_K_M_arithmetic_with_tools=0, copy_gain=0.011, course_arithmetic_with_tools=1,
                     course_date_with_tools=0.95, course_notool_with_tools=0.975, course_copy_gain=6.578,
                     course_copied=0.0, course_Q4_K_M_arithmetic_with_tools=1, course_Q4_K_M_date_with_tools=0.975,
                     rl_arithmetic_with_tools=1, rl_date_with_tools=0.95, rl_notool_with_tools=1,
                     rl_Q4_K_M_arithmetic_with_tools=1, rl_Q4_K_M_date_with_tools=0.95),
    "09_rag": {"hybrid_hit@5": 0.9667, "sparse_hit@5": 0.9667, "dense_hit@5": 0.3667, "hybrid_mrr": 0.9097,
               "sparse_mrr": 0.9125, "dense_mrr": 0.2285, "threshold": 13.93, "refusal_precision": 0.7215,
               "refusal_recall": 0.95, "answer_rag": 0.6167, "answer_rag_free": 0, "answer_none": 0, "chunks": 12438,
               "seconds": 65.1, "answer_chance": 0.5614, "answer_in_passage": 0.9333, "course_answer_rag_free": 0.85,
               "course_answer_rag": 0.8667, "course_answer_none": 0},
}


def test_every_lab_has_its_figures_bounds():
    assert set(FIGURE_BOUNDS) == set(CHAIN_FIGURES) == {p.stem for p in LABS}


@pytest.mark.parametrize("lab", sorted(FIGURE_BOUNDS))
def test_the_figure_bounds_pass_a_chains_figures_and_fail_each_broken_one(lab):
    """On a quick chain's figures every bound holds and reads every figure; each figure broken (a number set to −1
    and to 10⁹, a flag flipped, a word replaced) fails at least one bound."""
    figures = Figures(CHAIN_FIGURES[lab])
    FIGURE_BOUNDS[lab](figures)
    assert figures.read == set(CHAIN_FIGURES[lab]), f"figures no bound reads: {set(CHAIN_FIGURES[lab]) - figures.read}"
    unbounded = []
    for key, value in CHAIN_FIGURES[lab].items():
        breaks = [not value] if isinstance(value, bool) else ["(broken)"] if isinstance(value, str) else [-1, 1e9]
        if not any(_fails(FIGURE_BOUNDS[lab], {**CHAIN_FIGURES[lab], key: wrong}) for wrong in breaks):
            unbounded.append(key)
    assert not unbounded, f"no bound fails when these are broken: {unbounded}"


def _fails(bounds, figures: dict) -> bool:
    try:
        bounds(Figures(figures))
    except AssertionError:
        return True
    return False


def test_notebooks_are_committed_clean():
    for nb in LABS:
        data = json.loads(nb.read_text(encoding="utf-8"))
        for cell in data["cells"]:
            if cell["cell_type"] == "code":
                assert not cell.get("outputs") and not cell.get("execution_count"), f"{nb.name} has outputs"
        assert "widgets" not in data.get("metadata", {}), f"{nb.name} carries widget state"
        tags = [c.get("metadata", {}).get("tags", []) for c in data["cells"]]
        assert sum("parameters" in t for t in tags) == 1, f"{nb.name} needs one cell tagged 'parameters'"


@pytest.mark.parametrize("nb", LABS, ids=[p.stem for p in LABS])
def test_every_markdown_cell_is_bilingual_from_one_source(nb):
    """Each markdown cell holds its Chinese (first) and its English, so the two cannot drift (puyu_lab.labtext)."""
    from puyu_lab.labtext import problems

    bad = [f"cell {i}: {p}" for i, c in enumerate(_cells(nb)) if c["cell_type"] == "markdown"
           for p in problems(_text(c))]
    assert not bad, f"{nb.name}:\n" + "\n".join(bad)


def test_a_language_block_renders_as_markdown_and_the_style_hides_the_other():
    """nbconvert's own Markdown renderer (what the chain's HTML uses) keeps the blocks' Markdown, and the CSS
    ``setup`` shows hides exactly the other language."""
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    from puyu_lab.labtext import blocks, language_style, problems

    src = ('## 2 预训练 Pretraining\n\n<div lang="zh" class="lang-zh">\n\n**目标。** 训练一个分词器。\n\n- 第一步\n\n'
           '</div>\n<div lang="en" class="lang-en">\n\n**Goal.** Train a tokenizer.\n\n- step one\n\n</div>')
    assert problems(src) == [] and blocks(src)["zh"].startswith("**目标。**")
    html = markdown2html_mistune(src)
    assert "<strong>目标。</strong>" in html and "<strong>Goal.</strong>" in html and "<li>step one</li>" in html
    assert 'class="lang-zh"' in html and 'class="lang-en"' in html
    assert language_style("zh") == "<style>.lang-en { display: none; } .lang-zh { display: block; }</style>"
    assert language_style("en") == "<style>.lang-zh { display: none; } .lang-en { display: block; }</style>"
    assert problems("Only English.") and problems("## Parameters")
    assert any("first" in p for p in problems(src.replace('lang="zh" class="lang-zh"', "TMP")
                                              .replace('lang="en" class="lang-en"', 'lang="zh" class="lang-zh"')
                                              .replace("TMP", 'lang="en" class="lang-en"')))


def test_the_language_is_the_variable_then_the_system_locale(monkeypatch):
    from puyu_lab.i18n import default_language

    for var in ("PUYU_LAB_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(var, raising=False)
    assert default_language() == "en"
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    assert default_language() == "zh"
    monkeypatch.setenv("LC_ALL", "en_US.UTF-8")
    assert default_language() == "en"  # LC_ALL overrides LANG, as in POSIX
    monkeypatch.setenv("PUYU_LAB_LANG", "zh")
    assert default_language() == "zh"  # the variable overrides the locale


@pytest.mark.notebook
@pytest.mark.slow
def test_a_lab_run_in_chinese_prints_no_english_only_sentence(tmp_path):
    """The tour and the data lab, run with language "zh" in a workspace of their own: no line they print, raise or
    show as plain text is an English sentence without Chinese (puyu_lab.labtext.english_only_sentences)."""
    from puyu_lab.labrunner import run_lab
    from puyu_lab.labtext import english_only_sentences
    from puyu_lab.workspace import Workspace

    ws = Workspace(tmp_path / "ws")

    def english_lines(name: str, language: str) -> list[str]:
        res = run_lab(ROOT / "labs" / name, tmp_path / language, profile="quick", workspace=ws,
                      parameters={"language": language})
        assert res.ok, res.error
        found = []
        for i, cell in enumerate(json.loads(res.executed.read_text(encoding="utf-8"))["cells"]):
            for o in cell.get("outputs", []):
                if o.get("output_type") == "stream" and o.get("name") == "stdout":
                    text = _text({"source": o.get("text", "")})
                elif o.get("output_type") == "error":
                    text = f"{o.get('ename')}: {o.get('evalue')}"
                else:
                    continue
                found += [f"{name} cell {i}: {line}" for line in english_only_sentences(text)]
        return found

    # the detector sees English where there is some: the tour run in English prints English sentences
    assert len(english_lines("00_tour.ipynb", "en")) >= 2
    bad = english_lines("00_tour.ipynb", "zh") + english_lines("01_data.ipynb", "zh")
    assert not bad, "English-only lines in a zh run:\n" + "\n".join(bad[:40])


# ---- what the labs name exists ------------------------------------------------------------------------------------
# A lab's prose — its markdown, and the strings and comments of its code cells (what it prints, raises and explains) —
# and every check's hint name labs, sections, checks, config fields and package paths. Each must exist: a field
# renamed, a section that moved to another lab, a check or a lab that is no more would otherwise go on being taught
# (the hint that named `cfg.tokenizer.vocab_size` for `cfg.preset.vocab_size`, the one that sent a learner to the
# wrong lab's section).

def _strings_and_comments(code: str) -> list[str]:
    """What a learner reads in a code cell besides the code: its string literals (f-strings' text parts included)
    and its comments."""
    import ast
    import io
    import tokenize

    tree = compile(code, "<cell>", "exec", flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    out = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    out += [t.string for t in tokenize.generate_tokens(io.StringIO(code).readline) if t.type == tokenize.COMMENT]
    return out


def _prose(nb) -> list[tuple[str, str]]:
    out = []
    for i, c in enumerate(_cells(nb)):
        if c["cell_type"] == "markdown":
            out.append((f"{nb.stem} cell {i}", _text(c)))
        elif c["cell_type"] == "code":
            out += [(f"{nb.stem} cell {i}", s) for s in _strings_and_comments(_text(c))]
    return out


_NAMES_CACHE: dict = {}


def _classes(name: str) -> list:
    """The classes of the package named ``name`` (found by their ``class`` line, then imported)."""
    import importlib

    if name not in _NAMES_CACHE:
        found = []
        for path in sorted((ROOT / "puyu_lab").rglob("*.py")):
            if re.search(rf"^class {name}\b", path.read_text(encoding="utf-8"), re.M):
                parts = path.relative_to(ROOT).with_suffix("").parts
                mod = importlib.import_module(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
                found.append(getattr(mod, name))
        _NAMES_CACHE[name] = found
    return _NAMES_CACHE[name]


def _field_type(cls, f):
    """The dataclass a dataclass field holds (``None``: not a dataclass, or not known)."""
    import dataclasses
    import typing

    try:
        t = typing.get_type_hints(cls).get(f.name)
    except Exception:  # noqa: BLE001 - an annotation that does not resolve: fall back on the default
        t = None
    for cand in (t, *typing.get_args(t)):
        if dataclasses.is_dataclass(cand):
            return cand
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    return type(default) if dataclasses.is_dataclass(default) else None


def _has_path(cls, path: list[str]) -> bool:
    """Whether ``cls.a.b…`` names something: dataclass fields are followed into the dataclasses they hold; a
    property or method ends the walk (what it returns is not followed)."""
    import dataclasses

    for name in path:
        if cls is None:
            return True
        fields = {f.name: f for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else {}
        if name in fields:
            cls = _field_type(cls, fields[name])
        elif hasattr(cls, name):
            cls = None
        else:
            return False
    return True


def _resolves(dotted: str) -> bool:
    """Whether ``puyu_lab.a.b…`` names a module or an attribute of one."""
    import importlib

    parts = dotted.split(".")
    for k in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:k]))
        except ImportError:
            continue
        try:
            for name in parts[k:]:
                obj = getattr(obj, name)
        except AttributeError:
            return False
        return True
    return False


def _lab_config(nb):
    """The config class of a lab's ``cfg`` (``cfg = XConfig.for_profile(…)``), or ``None``."""
    for c in _cells(nb):
        m = re.search(r"^cfg = (\w+)\.for_profile\(", _text(c), re.M) if c["cell_type"] == "code" else None
        if m:
            return _classes(m.group(1))[0]
    return None


def _sections(nb) -> dict[int, str]:
    """A lab's numbered sections: number → heading line."""
    return {int(m.group(1)): m.group(0) for c in _cells(nb) if c["cell_type"] == "markdown"
            for m in re.finditer(r"^#{2,3} (\d+) .*$", _text(c), re.M)}


_LAB_NO = re.compile(r"(?<![\w-])labs? (\d\d(?!\d)(?:(?:, | and | or )\d\d(?!\d))*)|实验 ?(\d\d(?!\d)(?: ?(?:和|与|或|、) ?\d\d(?!\d))*)")
_LAB_STEM = re.compile(r"(?<![\w/])(\d\d_[a-z]+)\b")
_TITLE = r"(?:\s*['‘“\"]([^'’”\"]+)['’”\"])?"
_CROSS_SECTION = re.compile(r"\blab (\d\d)(?:'s|,)? sections? (\d+)" + _TITLE + r"|\bsections? (\d+) of lab (\d\d)" + _TITLE
                            + r"|实验 ?(\d\d) ?的?第 ?(\d+) ?节" + _TITLE)
_SECTION = re.compile(r"\bsections? (\d+(?:(?:, | and | or )\d+)*)" + _TITLE + r"|第 ?(\d+) ?节" + _TITLE)
_CFG = re.compile(r"(?<![\w.])cfg((?:\.[a-z_]\w*)+)")
_REPLACE = re.compile(r"\breplace\((cfg(?:\.\w+)*)\s*,([^()]*)\)")
_CLASS_ATTR = re.compile(r"\b([A-Z]\w*)\.([a-z_]\w*)")
_CLASS_CALL = re.compile(r"\b([A-Z]\w*)\(([^()]*)\)")
_PACKAGE = re.compile(r"\b(?:from (puyu_lab(?:\.\w+)+) import (\w+)|(puyu_lab(?:\.\w+)+))")


def name_problems(text: str, lab, configs: list, *, labs=None) -> list[str]:
    """Every lab, section, check, config field and package path ``text`` names that does not exist. ``lab``: the
    notebook a bare "section N" means; ``configs``: the config classes ``cfg`` may be (a lab's, or for a hint, those
    of its lab and of the labs it names)."""
    import inspect

    from puyu_lab.checks import REGISTRY, select

    select()  # registers every lab's checks
    labs = labs or LABS
    by_no = {p.name[:2]: p for p in labs}
    groups = "|".join(sorted({c.split(".", 1)[0] for c in REGISTRY}))
    bad = []

    def section(no: str, n: str, title: str | None):
        nb = by_no.get(no)
        if nb is None:
            return  # reported as a lab that does not exist
        heads = _sections(nb)
        if int(n) not in heads:
            bad.append(f"section {n} of {nb.stem}: it has sections {sorted(heads)}")
        elif title and title not in heads[int(n)]:
            bad.append(f"section {n} of {nb.stem} is {heads[int(n)]!r}, not {title!r}")

    for m in _LAB_STEM.finditer(text):
        if m.group(1) not in {p.stem for p in labs}:
            bad.append(f"lab {m.group(1)}: no such notebook in labs/")
    for m in _LAB_NO.finditer(text):
        for no in re.findall(r"\d\d", m.group(0)):
            if no not in by_no:
                bad.append(f"{m.group(0)!r}: there is no lab {no}")
    for m in _CROSS_SECTION.finditer(text):
        g = m.groups()
        no, n, title = (g[0], g[1], g[2]) if g[0] else (g[4], g[3], g[5]) if g[3] else (g[6], g[7], g[8])
        section(no, n, title)
    rest = _CROSS_SECTION.sub(" ", text)
    if lab is not None:
        for m in _SECTION.finditer(rest):
            numbers = re.findall(r"\d+", m.group(1)) if m.group(1) else [m.group(3)]
            for n in numbers:
                section(lab.name[:2], n, m.group(2) or m.group(4))
    for m in re.finditer(rf"(?<![\w/.\-])({groups})\.([a-z_]\w*)\b", text):
        name = m.group(0)
        if name in REGISTRY or _resolves(f"puyu_lab.{name}"):
            continue
        if any(_has_path(nb_cfg, [m.group(1), m.group(2)]) for nb_cfg in filter(None, map(_lab_config, labs))):
            continue  # a config path, e.g. data.self_repeat (SFTConfig.data)
        bad.append(f"{name}: not a check ({', '.join(sorted(REGISTRY))}), a package path or a config field")
    for m in _CFG.finditer(text):
        path = m.group(1).split(".")[1:]
        if not configs:
            bad.append(f"cfg{m.group(1)}: this lab has no cfg")
        elif not any(_has_path(c, path) for c in configs):
            bad.append(f"cfg{m.group(1)}: {' / '.join(c.__name__ for c in configs)} has no such field")
    rest = text
    while True:  # replace(cfg.data, x=…) inside replace(cfg, data=…): the innermost first
        m = _REPLACE.search(rest)
        if not m:
            break
        path = m.group(1).split(".")[1:]
        for kw in re.findall(r"(\w+)\s*=", m.group(2)):
            if configs and not any(_has_path(c, path + [kw]) for c in configs):
                bad.append(f"replace({m.group(1)}, {kw}=…): {' / '.join(c.__name__ for c in configs)} has no such field")
        rest = rest[:m.start()] + "X" + rest[m.end():]
    for m in _CLASS_ATTR.finditer(text):
        found = _classes(m.group(1))
        if found and not any(hasattr(c, m.group(2)) or _has_path(c, [m.group(2)]) for c in found):
            bad.append(f"{m.group(0)}: {m.group(1)} has no {m.group(2)!r}")
    for m in _CLASS_CALL.finditer(text):
        for c in _classes(m.group(1)):
            params = inspect.signature(c).parameters
            if any(p.kind is p.VAR_KEYWORD for p in params.values()):
                break
            unknown = [kw for kw in re.findall(r"(\w+)\s*=(?!=)", m.group(2)) if kw not in params]
            if not unknown:
                break
        else:
            if _classes(m.group(1)):
                bad.append(f"{m.group(0)}: {m.group(1)} takes no {unknown}")
    for m in _PACKAGE.finditer(text):
        dotted = f"{m.group(1)}.{m.group(2)}" if m.group(1) else m.group(3)
        if not _resolves(dotted):
            bad.append(f"{dotted}: no such module or attribute")
    return bad


@pytest.mark.parametrize("nb", LABS, ids=[p.stem for p in LABS])
def test_what_a_lab_names_exists(nb):
    """Every lab, section, check, config field and package path a lab's prose names exists (:func:`name_problems`)."""
    cfg = _lab_config(nb)
    bad = [f"{where}: {p}" for where, text in _prose(nb) for p in name_problems(text, nb, [cfg] if cfg else [])]
    assert not bad, f"{nb.name} names what does not exist:\n" + "\n".join(bad)


def test_what_a_check_hint_names_exists():
    """The same for every check's hint, in both languages: "section N" is its lab's, `cfg` the config of its lab or
    of a lab it names."""
    from puyu_lab.checks import REGISTRY, select

    select()  # registers every lab's checks
    by_name = {p.name: p for p in LABS}
    bad = []
    for c in REGISTRY.values():
        nb = by_name[c.lab]
        named = {no for m in _LAB_NO.finditer(c.hint + c.hint_zh) for no in re.findall(r"\d\d", m.group(0))}
        configs = list(dict.fromkeys(x for x in [_lab_config(nb)] + [_lab_config(p) for p in LABS if p.name[:2] in named] if x))
        bad += [f"{c.id}: {p}" for text in (c.hint, c.hint_zh, c.verifies) for p in name_problems(text, nb, configs)]
    assert not bad, "hints name what does not exist:\n" + "\n".join(bad)


def test_the_name_check_catches_what_went_wrong_before():
    """The errors issue 38 found, each caught: a field that is not there, a section in another lab, a check, a lab
    and a section number that do not exist, a keyword a config does not take, a package path that is gone."""
    by_no = {p.name[:2]: p for p in LABS}
    pre = _lab_config(by_no["02"])
    sft = _lab_config(by_no["03"])
    assert name_problems("retrain with `cfg.tokenizer.vocab_size`", by_no["02"], [pre])
    assert not name_problems("retrain with `cfg.preset.vocab_size`", by_no["02"], [pre])
    assert name_problems("lab 04, section 2 'The chat template'", None, [])
    assert not name_problems("lab 03, section 2 'The chat template'", None, [])
    assert name_problems("实验 04 第 2 节“对话模板”", None, [])
    assert name_problems("see `finetune.stop`", None, [])
    assert not name_problems("see `finetune.stops` and `data.self_repeat`", None, [])
    assert name_problems("run lab 10 first", None, []) and name_problems("run `10_serve.ipynb`", None, [])
    assert name_problems("as section 9 shows", by_no["03"], [sft])
    assert name_problems("`cfg = replace(cfg, data=replace(cfg.data, self_repeats=3))`", by_no["03"], [sft])
    assert not name_problems("`cfg = replace(cfg, data=replace(cfg.data, self_repeat=3))`", by_no["03"], [sft])
    assert name_problems("`LessonConfig.budget`", None, []) and name_problems("`RAGConfig(encoder_layer=2)`", None, [])
    assert name_problems("`from puyu_lab.data.filters import Recipes`", None, [])


def test_what_the_readme_names_exists():
    """The README's labs, checks, config fields (`cfg` of any lab) and package paths exist too."""
    configs = list(dict.fromkeys(c for c in map(_lab_config, LABS) if c))
    bad = name_problems((ROOT / "README.md").read_text(encoding="utf-8"), None, configs)
    assert not bad, "README.md names what does not exist:\n" + "\n".join(bad)


_TYPED_TIME = re.compile(r"(?<!\w)\d[\d,.]*\s?(?:s|秒|min|分钟|小时|h|hours?|minutes?|seconds?)\b"
                         r"|\b(?:a|one|two|half a) minutes?\b|[一两二三四五六七八九十半]+(?:个)?(?:分钟|小时)")


@pytest.mark.parametrize("nb", LABS, ids=[p.stem for p in LABS])
def test_a_lab_types_no_time_in_its_prose(nb):
    """A lab's markdown states no time typed by hand ("71 s", "under a minute"): times drift with every machine and
    every recipe, so a lab prints its own (a budget from its config, the seconds a run took) or points to the table
    `make chain` writes. Code spans (`cfg.budget_s`) are left aside."""
    bad = [f"cell {i}: {m.group(0)!r}" for i, c in enumerate(_cells(nb)) if c["cell_type"] == "markdown"
           for m in _TYPED_TIME.finditer(re.sub(r"`[^`]*`", "", _text(c)))]
    assert not bad, f"{nb.name} types times in its prose:\n" + "\n".join(bad)
