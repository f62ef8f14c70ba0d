"""中文优先 (issue 38): an artifact's key figures read as labels in both languages, from one table
(``puyu_lab.i18n.FIGURES``), in the chain sidebar (``Workspace.chain``'s ``figure_labels``) and in ``puyu-lab status``.

On a real workspace (``layers``: corpus → tokenizer → base → sft, made by the stages' own engines): every figure it
shows has an English and a Chinese label, and ``puyu-lab status`` under zh prints the Chinese ones, no raw key. The
stages ``layers`` does not run are held to the table by the names their engines give their figures.
"""
from __future__ import annotations

import re

import pytest

from puyu_lab import i18n
from puyu_lab.cli import main
from puyu_lab.labtext import cjk_share
from puyu_lab.workspace import Workspace


@pytest.fixture(scope="module")
def sft_ws(layers) -> Workspace:
    return Workspace(layers.path("sft"))  # the shared layer: read only


def shown(ws: Workspace) -> dict[str, dict]:
    """Artifact name → its row in the sidebar's data."""
    return {a["name"]: a for st in ws.chain()["stages"] for a in st["artifacts"]}


def raw_key(key: str, text: str) -> bool:
    """Whether ``text`` shows ``key=`` as a figure of its own (``steps=`` is not ``max_steps=``)."""
    return re.search(rf"(?<![\w@]){re.escape(key)}=", text) is not None


def test_every_figure_a_real_workspace_shows_has_an_english_and_a_chinese_label(sft_ws):
    arts = shown(sft_ws)
    assert {"corpus/clean", "tokenizer/spm", "model/base", "sft/data", "model/sft"} <= set(arts), sorted(arts)
    keys = set()
    for name, a in arts.items():
        assert a["figures"], name
        assert set(a["figure_labels"]) == set(a["figures"]), name
        for key, labels in a["figure_labels"].items():
            assert key in i18n.FIGURES, f"{name}: the figure {key!r} has no label in puyu_lab.i18n.FIGURES"
            en, zh = i18n.FIGURES[key]
            assert labels == {"en": en, "zh": zh}, (name, key, labels)
            assert en.strip() and zh.strip() and zh != key, (key, en, zh)
            assert re.search(r"[\u4e00-\u9fff]", zh) and cjk_share(zh) >= 0.5, (key, zh)
            keys.add(key)
    assert len(keys) >= 12, sorted(keys)  # the corpus's, the tokenizer's, the base model's, the SFT data's and model's


def test_a_figure_without_a_label_stands_for_itself():
    assert i18n.figure_labels(["no_such_figure"]) == {"no_such_figure": {"en": "no_such_figure", "zh": "no_such_figure"}}


@pytest.mark.parametrize("code", ["zh", "en"])
def test_status_prints_the_figures_labels_in_the_course_language(sft_ws, code, monkeypatch, capsys):
    monkeypatch.setattr(i18n, "_LANG", code)
    assert main(["status", "--home", str(sft_ws.root)]) == 0
    out = capsys.readouterr().out
    for name, a in shown(sft_ws).items():
        line = next(ln for ln in out.splitlines() if f" {name} " in ln)
        for key in a["figures"]:
            label = a["figure_labels"][key][code]
            assert f"{label}=" in line, (name, key, line)
            if code == "zh":
                assert not raw_key(key, line), (name, key, line)


def test_the_stages_layers_does_not_run_name_their_figures_in_the_table():
    """The figures of the deploy, agent and preference stages, by the names their engines build them from."""
    from puyu_lab.agent.config import AgentConfig
    from puyu_lab.deploy.quantize import FLOAT_LEVELS, LADDER
    from puyu_lab.preference.pairs import SOURCES

    keys = [f"size_mb_{lv}" for lv in (*LADDER, *FLOAT_LEVELS)]  # gguf/*: the reference's size, then the next level's
    keys += [f"{k}_{how}" for k in AgentConfig().kinds for how in ("with_tools", "direct")]  # agent/eval
    keys += [f"heldout_{s}" for s in SOURCES]  # pref/data: the held-out pairs by source
    keys += ["method", "tuning", "steps", "max_steps"]  # model/dpo, model/orpo
    keys += ["chunks", "dim", "encoder_final_loss", "hybrid_hit@5", "sparse_hit@5", "dense_hit@5", "answer_rag"]  # rag
    keys += ["reward", "steps", "max_steps", "reward_first", "reward_last", "kl_max"]  # model/rl, model/rl-naive
    missing = [k for k in keys if k not in i18n.FIGURES]
    assert not missing, missing
