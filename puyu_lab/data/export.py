"""Export a cleaning recipe as a datatrove pipeline script (``puyu-lab data export-datatrove``).

The script runs the same rules (through :mod:`.datatrove_steps`), PII scrubbing and MinHash
dedup on datatrove's executors: local processes here, Slurm or Ray on a cluster. Its first
stage writes the documents that pass the rules to ``<out>/filtered``, so its verdicts can be
compared with puyu-lab's one by one.
"""
from __future__ import annotations

import os
from pathlib import Path

from .filters import Recipe

TEMPLATE = '''#!/usr/bin/env python
"""datatrove pipeline exported by puyu-lab {version} from a 书生·万卷 data-lab recipe.

Run:   python {name} --input DIR_OF_JSONL --out OUT_DIR [--tasks N] [--workers N]
       (tasks: how many shards of the input files, each task reading its own; workers: how many tasks run at once,
        in every stage — the MinHash buckets stage has one task per band)
Input: JSON lines with "id" and "text" (other fields travel along as metadata).
Stages: 1 rules + PII → OUT/filtered;  2–4 MinHash signatures, buckets, clusters;
        5 keep one document per cluster → OUT/deduplicated.
To scale out, swap LocalPipelineExecutor for datatrove's SlurmPipelineExecutor or RayPipelineExecutor.
"""
import argparse
import json

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup import MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter, MinhashDedupSignature
from datatrove.pipeline.dedup.minhash import MinhashConfig
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter

from puyu_lab.data.datatrove_steps import PIIScrubber, TOKENIZER, filter_steps
from puyu_lab.data.filters import Recipe

RECIPE = json.loads(r"""
{recipe}
""")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tasks", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--filter-only", action="store_true", help="run stage 1 only (the rules and PII)")
    args = ap.parse_args()
    recipe = Recipe.from_dict(RECIPE)
    out = args.out.rstrip("/")
    run = dict(tasks=args.tasks, workers=args.workers)

    pii = [PIIScrubber()] if recipe.pii else []
    stage1 = LocalPipelineExecutor(pipeline=[
        JsonlReader(args.input, id_key="id"),
        *filter_steps(recipe),
        *pii,
        JsonlWriter(f"{{out}}/filtered", compression=None),
    ], logging_dir=f"{{out}}/logs/filter", **run)
    if args.filter_only or not recipe.near_dedup:
        stage1.run()
        return
    cfg = MinhashConfig(n_grams=recipe.minhash_ngram, num_buckets=recipe.minhash_bands,
                        hashes_per_bucket=recipe.minhash_rows, seed=recipe.minhash_seed)
    sigs = LocalPipelineExecutor(pipeline=[
        JsonlReader(f"{{out}}/filtered", id_key="id"),
        MinhashDedupSignature(output_folder=f"{{out}}/minhash/signatures", config=cfg, language=TOKENIZER),
    ], logging_dir=f"{{out}}/logs/signatures", depends=stage1, **run)
    buckets = LocalPipelineExecutor(pipeline=[
        MinhashDedupBuckets(input_folder=f"{{out}}/minhash/signatures", output_folder=f"{{out}}/minhash/buckets",
                            config=cfg),
    ], tasks=cfg.num_buckets, workers=args.workers, logging_dir=f"{{out}}/logs/buckets", depends=sigs)
    clusters = LocalPipelineExecutor(pipeline=[
        MinhashDedupCluster(input_folder=f"{{out}}/minhash/buckets", output_folder=f"{{out}}/minhash/remove_ids",
                            config=cfg),
    ], tasks=1, logging_dir=f"{{out}}/logs/clusters", depends=buckets)
    final = LocalPipelineExecutor(pipeline=[
        JsonlReader(f"{{out}}/filtered", id_key="id"),
        MinhashDedupFilter(input_folder=f"{{out}}/minhash/remove_ids"),
        JsonlWriter(f"{{out}}/deduplicated", compression=None),
    ], logging_dir=f"{{out}}/logs/dedup_filter", depends=clusters, **run)
    final.run()


if __name__ == "__main__":
    main()
'''


def datatrove_script(recipe: Recipe, name: str = "datatrove_pipeline.py") -> str:
    from ..version import __version__

    return TEMPLATE.format(version=__version__, name=name, recipe=recipe.to_json())


def write_datatrove_script(recipe: Recipe, path: str | os.PathLike) -> Path:
    """Write the script atomically (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(datatrove_script(recipe, path.name), encoding="utf-8")
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)
    return path
