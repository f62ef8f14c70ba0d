"""Run tasks over models: lm-eval-shaped results per model and an OpenCompass-style summary.

``evaluate(scorers, tasks)`` → :class:`EvalRun`. ``save(ws, run, name)`` writes ``eval/<name>``:
``results/<model>.json`` (lm-eval's shape: ``results`` / ``configs`` / ``samples``), ``summary.csv``
(dataset | metric | mode | one column per model) and ``samples.jsonl`` for the sample browser.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Callable

from ..events import Emitter, Event, StopFlag
from ..models.base import Model, as_messages, as_text
from ..contracts.scoring import mean_stderr
from .tasks import Task, score_generation, word_count


@dataclass
class EvalRun:
    tasks: list[Task]
    models: list[str]
    metrics: dict = field(default_factory=dict)  # model → task → metric → value
    samples: dict = field(default_factory=dict)  # model → task → list[dict]
    seconds: dict = field(default_factory=dict)  # model → task → s

    def summary(self) -> list[dict]:
        rows = []
        for t in self.tasks:
            for m in t.metrics:
                row = {"dataset": t.name, "metric": m, "mode": {"choice": "ppl" if t.mode == "ppl" else "ll",
                                                                "perplexity": "ppl", "generation": "gen"}[t.kind]}
                for model in self.models:
                    row[model] = self.metrics.get(model, {}).get(t.name, {}).get(m)
                rows.append(row)
        return rows

    def side_by_side(self, task: str, a: str, b: str, only_diff: bool = False) -> list[dict]:
        """One row per document of ``task``: prompt, gold, and each model's answer (score); with
        ``only_diff`` only the documents where models ``a`` and ``b`` answer differently."""
        per = {m: self.samples.get(m, {}).get(task, []) for m in self.models}
        n = max((len(v) for v in per.values()), default=0)
        rows = []
        for i in range(n):
            sa = per[a][i] if i < len(per[a]) else {}
            sb = per[b][i] if i < len(per[b]) else {}
            if only_diff and sa.get("answer") == sb.get("answer"):
                continue
            base = next((per[m][i] for m in self.models if i < len(per[m])), {})
            row = {"#": i, "prompt": str(base.get("prompt", ""))[:160],
                   "gold": base.get("gold") if not isinstance(base.get("gold"), int) or "choices" not in base
                   else base["choices"][base["gold"]]}
            for m in self.models:
                s = per[m][i] if i < len(per[m]) else {}
                row[m] = f"{s.get('answer', '')} ({s.get('score', s.get('ll', ''))})" if s else ""
            rows.append(row)
        return rows

    def lm_eval_json(self, model: str) -> dict:
        return {"results": {t: {f"{k},none": v for k, v in ms.items()} | {"alias": t}
                            for t, ms in self.metrics.get(model, {}).items()},
                "configs": {t.name: {"task": t.name, "output_type": t.kind, "mode": t.mode, "num_docs": len(t.docs)}
                            for t in self.tasks},
                "samples": self.samples.get(model, {}), "model_name": model}


def _chat_context(model: Model, text: str | list[dict]) -> str | None:
    """``text`` as a user turn (or ``messages``, a whole prompt) in the model's own chat format, up to
    the assistant's turn (None: the model has none)."""
    if not model.has_chat_template or not hasattr(model, "render"):
        return None
    return model.render([{"role": "user", "content": text}] if isinstance(text, str) else text)


def _exp(x: float) -> float:
    """``math.exp``, but inf instead of OverflowError (word perplexity of Chinese text, which has
    few whitespace-separated 'words', overflows where lm-eval would crash)."""
    try:
        return math.exp(x)
    except OverflowError:
        return float("inf")


def with_stderr(metrics: dict, samples: list[dict], per_sample: dict[str, str]) -> dict:
    """``metrics`` plus ``<metric>_stderr`` for each metric that is a mean of a per-sample value (``per_sample``:
    metric → the samples' key). A figure's 95 % interval is ±1.96 stderr: what a smaller sample costs."""
    out = dict(metrics)
    for m, key in per_sample.items():
        out[f"{m}_stderr"] = mean_stderr([float(s[key]) for s in samples])
    return out


GEN_BATCH = 16  # generation prompts decoded together (a progress step each)


def run_task(scorer: Model, task: Task, progress: Callable[[int], None] | None = None) -> tuple[dict, list[dict]]:
    docs = task.docs
    if task.kind == "perplexity":
        lls = scorer.loglikelihood_rolling([d["text"] for d in docs], progress)
        words = [word_count(d["text"]) for d in docs]
        nbytes = [len(d["text"].encode("utf-8")) for d in docs]
        tot = sum(lls)
        metrics = {"word_perplexity": _exp(-tot / sum(words)), "byte_perplexity": _exp(-tot / sum(nbytes)),
                   "bits_per_byte": -tot / sum(nbytes) / math.log(2)}
        samples = [{"doc_id": i, "ll": ll, "words": w, "bytes": b, "prompt": d["text"][:120]}
                   for i, (d, ll, w, b) in enumerate(zip(docs, lls, words, nbytes))]
        return metrics, samples
    if task.kind == "choice":
        reqs, spans = [], []
        for d in docs:
            ctx, delim = d["context"], task.delimiter
            if task.meta.get("chat"):
                wrapped = _chat_context(scorer, d.get("messages") or d["context"])
                if wrapped is not None:
                    ctx, delim = wrapped, ""
            start = len(reqs)
            for c in d["choices"]:
                if task.mode == "ppl":  # OpenCompass PPL: the whole sequence, from the start
                    reqs.append(("", ctx + delim + c))
                else:  # lm-eval: the continuation is delimiter + choice
                    reqs.append((ctx, delim + c))
            spans.append((start, len(reqs)))
        res = scorer.loglikelihood(reqs, progress)
        if task.mode == "ppl":
            ntok = [len(scorer.encode(r[1], add_special_tokens=False)) for r in reqs]
        samples, acc, acc_norm = [], 0.0, 0.0
        for i, (d, (a, b)) in enumerate(zip(docs, spans)):
            lls = [r[0] for r in res[a:b]]
            if task.mode == "ppl":
                scores = [ll / n for ll, n in zip(lls, ntok[a:b])]  # mean log-likelihood per token
                pred = int(max(range(len(scores)), key=lambda j: scores[j]))
                pred_norm = pred
            else:
                pred = int(max(range(len(lls)), key=lambda j: lls[j]))
                normed = [ll / len(c) for ll, c in zip(lls, d["choices"])]
                pred_norm = int(max(range(len(normed)), key=lambda j: normed[j]))
            acc += pred == d["gold"]
            acc_norm += pred_norm == d["gold"]
            samples.append({"doc_id": i, "prompt": d["context"], "choices": d["choices"], "gold": d["gold"],
                            "lls": lls, "pred": pred, "answer": d["choices"][pred], "score": float(pred == d["gold"]),
                            "acc_norm": float(pred_norm == d["gold"])})
        return with_stderr({"acc": acc / len(docs), "acc_norm": acc_norm / len(docs)}, samples,
                           {"acc": "score", "acc_norm": "acc_norm"}), samples
    # generation: the uncached prompts decoded together, GEN_BATCH a step (Model.generate_batch; one by one
    # where the backend cannot batch), greedy, as lm-eval's generate_until
    cache = scorer.cache
    prompts = [d.get("messages") or d["prompt"] for d in docs]
    keys = [scorer._key("gen", [p, list(task.stop), task.max_new_tokens, task.chat]
                        + ([True] if task.keep_special else [])) if cache is not None else None for p in prompts]
    outs = [cache[k] if k is not None and k in cache else None for k in keys]
    todo = [i for i, o in enumerate(outs) if o is None]
    scorer.stats["cached"] += len(docs) - len(todo)
    if progress and len(todo) < len(docs):
        progress(len(docs) - len(todo))
    chat = task.chat and scorer.has_chat_template
    for b in range(0, len(todo), GEN_BATCH):
        part = todo[b:b + GEN_BATCH]
        gens = scorer.generate_batch([as_messages(prompts[i]) if chat else as_text(prompts[i]) for i in part],
                                     stop=task.stop, max_new_tokens=task.max_new_tokens, keep_special=task.keep_special)
        for i, g in zip(part, gens):
            outs[i] = g.text.strip()
            if keys[i] is not None:
                cache[keys[i]] = outs[i]
        if progress:
            progress(len(part))
    samples, total = [], 0.0
    for i, (d, p, out) in enumerate(zip(docs, prompts, outs)):
        s = score_generation(task, out, d["answer"])
        total += s
        samples.append({"doc_id": i, "prompt": p if isinstance(p, str) else p[-1]["content"],
                        "gold": d["answer"], "answer": out, "score": s})
    return with_stderr({"score": total / len(docs)}, samples, {"score": "score"}), samples


def evaluate(scorers: dict[str, Model], tasks: list[Task], *, on_event: Callable[[Event], None] | None = None,
             stop: StopFlag | None = None, progress_bar: bool = True) -> EvalRun:
    em = Emitter("eval", on_event)
    run = EvalRun(tasks, list(scorers))
    from tqdm.auto import tqdm

    for name, scorer in scorers.items():
        for task in tasks:
            if stop is not None:
                stop.check()
            if task.kind != "generation" and not scorer.can_score:
                continue  # a generation-only backend (an OpenAI endpoint)
            t0 = time.perf_counter()
            bar = tqdm(total=None, desc=f"{name} · {task.name}", disable=not progress_bar, leave=False)
            metrics, samples = run_task(scorer, task, bar.update)
            bar.close()
            run.metrics.setdefault(name, {})[task.name] = metrics
            run.samples.setdefault(name, {})[task.name] = samples
            run.seconds.setdefault(name, {})[task.name] = time.perf_counter() - t0
            em.emit("task", model=name, task=task.name, metrics=metrics)
        scorer.save_cache()
    em.emit("done", models=len(scorers), tasks=len(tasks))
    return run


def save(ws, run: EvalRun, name: str = "eval/chain", parents=()) -> object:
    import csv

    with ws.write(name, kind="eval", stage="eval", parents=list(parents),
                  params={"tasks": {t.name: {"kind": t.kind, "mode": t.mode, "docs": len(t.docs),
                                             "signature": t.signature()} for t in run.tasks},
                          "models": run.models}) as w:
        (w.path / "results").mkdir()
        for m in run.models:
            (w.path / "results" / f"{m.replace('/', '__')}.json").write_text(
                json.dumps(run.lm_eval_json(m), ensure_ascii=False, indent=1), encoding="utf-8")
        rows = run.summary()
        with open(w.path / "summary.csv", "w", newline="", encoding="utf-8") as f:
            wr = csv.DictWriter(f, fieldnames=["dataset", "metric", "mode", *run.models])
            wr.writeheader()
            wr.writerows(rows)
        with open(w.path / "samples.jsonl", "w", encoding="utf-8") as f:
            for m, by_task in run.samples.items():
                for t, ss in by_task.items():
                    for s in ss:
                        f.write(json.dumps({"model": m, "task": t, **s}, ensure_ascii=False) + "\n")
        main = {t.name: t.main_metric for t in run.tasks}
        w.metrics.update({m: {t: round(v[main[t]], 4) for t, v in ms.items()} for m, ms in run.metrics.items()})
    return ws.get(name)
