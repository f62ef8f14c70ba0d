"""The exported datatrove pipeline runs for real and keeps the same documents as puyu-lab."""
import json
import subprocess
import sys

import pandas as pd
import pytest

from puyu_lab.data.export import write_datatrove_script
from puyu_lab.data.filters import Recipe
from puyu_lab.data.pipeline import prepare
from puyu_lab.data.sources import load_sources

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("tweak", ["defaults", "tuned"])
def test_exported_pipeline_agrees(tmp_path, tweak, artifacts_dir):
    recipe = Recipe()
    if tweak == "tuned":  # what a learner might do with the sliders
        recipe.set("gopher_below_alpha_threshold", 0.6, "en")
        recipe.set("top_2_gram", 0.4, "zh")
        recipe.set("line_punct_ratio", None)
        recipe.c4_curly_bracket = False
        recipe.groups["fineweb"] = False
    raw = load_sources(limit_per_source=300, seed=7)
    run = prepare(raw=raw, recipe=recipe, show_progress=False)
    v = run.verdict(recipe)
    kept_ids = set(raw.id[v.reason == ""]) | set(raw.id[pd.Series(v.stage).isin(["exact_dedup", "near_dedup"])])

    inp = tmp_path / "in"
    inp.mkdir()
    raw[["id", "text", "source"]].to_json(inp / "docs.jsonl", orient="records", lines=True, force_ascii=False)
    script = write_datatrove_script(recipe, tmp_path / "pipeline.py")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(script), "--input", str(inp), "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    filtered = pd.read_json(next((out / "filtered").glob("*.jsonl")), lines=True)
    dedup = pd.read_json(next((out / "deduplicated").glob("*.jsonl")), lines=True)
    dt_ids = set(filtered.id)
    agree = 1 - len(dt_ids ^ kept_ids) / len(raw)
    (artifacts_dir / f"datatrove-agreement-{tweak}.json").write_text(json.dumps({
        "documents": len(raw), "puyu_kept_by_rules": len(kept_ids), "datatrove_kept_by_rules": len(dt_ids),
        "agreement": agree, "datatrove_after_minhash": len(dedup), "puyu_after_dedup": int(v.keep.sum())}, indent=1))
    assert dt_ids == kept_ids, f"agreement {agree:.4f}: only datatrove {sorted(dt_ids - kept_ids)[:5]}, " \
                               f"only puyu {sorted(kept_ids - dt_ids)[:5]}"
    # the text datatrove writes (C4 line rules + PII) is the text puyu-lab exports
    texts = dict(zip(filtered.id, filtered.text))
    index = {d: i for i, d in enumerate(raw.id)}
    mismatched = [d for d in kept_ids if run.final_text(index[d], recipe)[0] != texts[d]]
    assert not mismatched, mismatched[:3]
    assert 0 < len(dedup) <= len(filtered)


def _kept(folder):
    files = sorted(folder.glob("*.jsonl"))
    df = pd.concat([pd.read_json(f, lines=True, dtype={"id": str}) for f in files], ignore_index=True)
    return dict(zip(df.id, df.text)), len(files)


def test_exported_pipeline_on_four_tasks_keeps_what_one_task_keeps(tmp_path):
    """datatrove's LocalPipelineExecutor with tasks=4, workers=2 (each task reads its own input files, two run at a
    time; the MinHash stages meet across tasks) keeps exactly the documents, and the text, that one task keeps —
    duplicates placed in different tasks' files included."""
    import numpy as np

    raw = load_sources(limit_per_source=60, seed=7).sample(frac=1, random_state=0)[["id", "text", "source"]]
    parts = [raw.iloc[ix].copy() for ix in np.array_split(np.arange(len(raw)), 4)]
    # copies of task 0's documents in tasks 1–3's files: only near-dedup across tasks can find them
    copies = parts[0].iloc[:9].copy()
    copies["id"] = [f"copy-{i}" for i in range(len(copies))]
    for k in range(3):
        parts[k + 1] = pd.concat([parts[k + 1], copies.iloc[3 * k: 3 * k + 3]])
    inp = tmp_path / "in"
    inp.mkdir()
    for i, part in enumerate(parts):
        part.to_json(inp / f"part{i}.jsonl", orient="records", lines=True, force_ascii=False)
    script = write_datatrove_script(Recipe(), tmp_path / "pipeline.py")
    runs = {}
    for name, extra in (("one", []), ("four", ["--tasks", "4", "--workers", "2"])):
        proc = subprocess.run([sys.executable, str(script), "--input", str(inp), "--out", str(tmp_path / name),
                               *extra], capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[name] = {stage: _kept(tmp_path / name / stage) for stage in ("filtered", "deduplicated")}
    assert runs["one"]["deduplicated"][1] == 1 and runs["four"]["deduplicated"][1] == 4, "one output file per task"
    for stage in ("filtered", "deduplicated"):
        assert runs["four"][stage][0] == runs["one"][stage][0], stage
    filtered, kept = runs["one"]["filtered"][0], runs["one"]["deduplicated"][0]
    copied = [c for c in filtered if c.startswith("copy-")]
    assert copied, "some copies pass the rules"
    assert not set(copied) & set(kept), "each copy goes; its original, read by the first task, stays"
    assert all(filtered[c] in kept.values() for c in copied)
