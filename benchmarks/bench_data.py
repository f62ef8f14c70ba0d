"""书生·万卷 data stage: documents/second of the whole cleaning pipeline, puyu-lab vs datatrove.

Same corpus (the quick profile's raw mixture), same rules, same PII, MinHash dedup on both sides,
run one after the other in this process's machine (2 cores: one process each, as datatrove's
LocalPipelineExecutor with tasks=1). Both start from the same JSON lines file and end with the
cleaned JSON lines written to disk; both pay Python start-up and imports.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

PUYU = r"""
import sys, time
import pandas as pd
from puyu_lab.data.pipeline import prepare
from puyu_lab.data.filters import Recipe
raw = pd.read_json(sys.argv[1], lines=True, dtype=False)
raw["label"] = None
run = prepare(raw=raw, recipe=Recipe(), show_progress=False)
v = run.verdict()
rows = [{"id": raw.id.iat[i], "text": run.final_text(int(i))[0]} for i in v.keep.nonzero()[0]]
pd.DataFrame(rows).to_json(sys.argv[2], orient="records", lines=True, force_ascii=False)
by_rules = raw.id[(v.reason == "") | (v.stage == "exact_dedup") | (v.stage == "near_dedup")]
open(sys.argv[2] + ".rules", "w").write("\n".join(by_rules))
print(len(rows))
"""


def _timed(cmd: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return time.perf_counter() - t0, out.stdout.strip()


def reapply_50k(raw: pd.DataFrame) -> str:
    """What a slider move costs in the cleaning panel: re-applying a recipe to 50k documents."""
    import numpy as np

    from puyu_lab.data.filters import Recipe, apply
    from puyu_lab.data.signals import compute_signals

    sig = compute_signals(raw.iloc[:2000], show_progress=False)
    big = pd.concat([sig] * 25, ignore_index=True)
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 40_000, len(big))
    clusters = rng.integers(0, 45_000, len(big))
    recipe = Recipe()
    times = []
    for i in range(15):
        recipe.set("top_2_gram", 0.1 + i * 0.02, "zh")
        t0 = time.perf_counter()
        apply(big, recipe, exact_key=keys, cluster=clusters)
        times.append((time.perf_counter() - t0) * 1000)
    return f"panel slider move (recipe re-applied to {len(big):,} documents): median {np.median(times):.0f} ms, max {max(times):.0f} ms"


def main() -> str:
    from puyu_lab.data.export import write_datatrove_script
    from puyu_lab.data.filters import Recipe
    from puyu_lab.data.sources import load_sources
    from puyu_lab.profiles import get_profile

    prof = get_profile("quick")
    raw = load_sources(limit_per_source=prof.data.max_docs_per_source, seed=prof.data.seed)
    n, chars = len(raw), int(raw.text.str.len().sum())
    rows = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        (d / "in").mkdir()
        inp = d / "in" / "docs.jsonl"
        raw[["id", "text", "source"]].to_json(inp, orient="records", lines=True, force_ascii=False)
        script = write_datatrove_script(Recipe(), d / "pipeline.py")
        results = {}
        for rep in range(2):  # alternate, twice: the machine is noisy
            t_p, kept_p = _timed([sys.executable, "-c", PUYU, str(inp), str(d / f"puyu{rep}.jsonl")])
            t_d, _ = _timed([sys.executable, str(script), "--input", str(d / "in"), "--out", str(d / f"dt{rep}")])
            results.setdefault("puyu", []).append(t_p)
            results.setdefault("datatrove", []).append(t_d)
        kept_d = sum(1 for _ in open(next((d / "dt0" / "deduplicated").glob("*.jsonl")), encoding="utf-8"))
        filt_d = set(pd.read_json(next((d / "dt0" / "filtered").glob("*.jsonl")), lines=True).id)
        filt_p = set((d / "puyu0.jsonl.rules").read_text(encoding="utf-8").split("\n"))
    best_p, best_d = min(results["puyu"]), min(results["datatrove"])
    rows.append(("puyu-lab", best_p, n / best_p, int(kept_p)))
    rows.append(("datatrove 0.10 (exported pipeline)", best_d, n / best_d, kept_d))
    lines = [f"corpus: quick profile mixture, {n:,} documents, {chars:,} characters; best of 2 runs each",
             f"{'pipeline':<36}{'seconds':>9}{'docs/s':>10}{'kept':>7}"]
    for name, secs, rate, kept in rows:
        lines.append(f"{name:<36}{secs:>9.1f}{rate:>10.0f}{kept:>7}")
    lines.append(f"speed-up (puyu-lab / datatrove docs/s): {best_d / best_p:.2f}x")
    agree = 1 - len(filt_d ^ filt_p) / n
    lines.append(f"documents kept by the rules: puyu-lab {len(filt_p)}, datatrove {len(filt_d)}; "
                 f"agreement {agree:.2%} of {n:,} verdicts")
    lines.append("(the MinHash dedup steps differ in hashing, so 'kept' after dedup may differ by a few)")
    lines.append(reapply_50k(raw))
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
