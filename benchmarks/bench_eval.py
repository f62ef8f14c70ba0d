"""Evaluation: samples/s of puyu-lab's runner vs lm-evaluation-harness, same task, same model, one run."""
from __future__ import annotations

import json
import random
import tempfile
import time
from pathlib import Path


def main() -> str:
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    from puyu_lab.data.pipeline import load_corpus
    from puyu_lab.models import HFModel
    from puyu_lab.eval.runner import evaluate
    from puyu_lab.eval.tasks import load_task_file
    from puyu_lab.workspace import Workspace
    from common import tiny_base

    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        ws = Workspace(d / "ws")
        cfg = tiny_base(ws, 30)
        model = ws.get("model/base").path
        reviews = [r for r in load_corpus(ws, "train").to_list() if r.get("label")][:200]
        docs = [{"context": f"评论：{r['text'][:120]}\n情感：", "choices": ["正面", "负面"],
                 "gold": 0 if r["label"] == "pos" else 1} for r in reviews]
        random.Random(0).shuffle(docs)
        (d / "c.jsonl").write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in docs) + "\n")
        (d / "bench_choice.yaml").write_text(
            f"task: bench_choice\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {d / 'c.jsonl'}\n"
            "test_split: test\noutput_type: multiple_choice\ndoc_to_text: context\ndoc_to_choice: choices\n"
            "doc_to_target: gold\nmetric_list:\n  - metric: acc\n  - metric: acc_norm\n")
        task = load_task_file(d / "c.jsonl", "choice")
        rows = []
        for bs in (1, 8):
            t = time.perf_counter()
            ref = simple_evaluate(model="hf", model_args=f"pretrained={model},dtype=float32", tasks=["bench_choice"],
                                  task_manager=TaskManager(include_path=str(d)), batch_size=bs, device="cpu",
                                  verbosity="ERROR")
            lm_s = time.perf_counter() - t
            t = time.perf_counter()
            run = evaluate({"m": HFModel.load(model, batch_size=bs)}, [task], progress_bar=False)
            ours_s = time.perf_counter() - t
            same = run.metrics["m"][task.name]["acc"] == ref["results"]["bench_choice"]["acc,none"]
            rows.append((bs, len(docs) / lm_s, len(docs) / ours_s, same))
            cached = HFModel.load(model, batch_size=bs)
            cached.use_cache(d / f"cache{bs}.json")
            evaluate({"m": cached}, [task], progress_bar=False)
            cached.save_cache()
            again = HFModel.load(model, batch_size=bs)
            again.use_cache(d / f"cache{bs}.json")
            t = time.perf_counter()
            evaluate({"m": again}, [task], progress_bar=False)
            rows[-1] += (len(docs) / (time.perf_counter() - t),)
    lines = [f"task: {len(docs)} review-sentiment docs × 2 choices; model: quick preset (5.2 M parameters); "
             "wall time includes model loading for both",
             f"{'batch':>6}{'lm-eval docs/s':>16}{'puyu-lab docs/s':>17}{'ratio':>8}{'same acc':>10}{'cached re-run docs/s':>22}"]
    for bs, lm, ours, same, cached in rows:
        lines.append(f"{bs:>6}{lm:>16.1f}{ours:>17.1f}{ours / lm:>8.2f}{str(same):>10}{cached:>22.0f}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
