"""``puyu-lab deploy …``: the GGUF ladder of a model and its measurements."""
from __future__ import annotations

import argparse

from ..stagecli import Verb, add_stage, opt, stage_config, wrote


def cmd_run(args: argparse.Namespace) -> int:
    from ..workspace import Workspace
    from .config import DeployConfig
    from .entry import run

    cfg = stage_config(args, DeployConfig, "model", "levels", "n_tokens", "n_ctx", "decode_tokens", "transformers")
    res = run(Workspace(args.home), cfg)
    print(f"wrote {res.gguf.name}: {', '.join(res.gguf.metrics['levels'])}")
    print(f"{'level':<12}{'MB':>9}{'ppl':>10}{'KL':>11}{'top-1':>8}{'tok/s':>9}")
    for level, m in res.artifact.metrics.items():
        if isinstance(m, dict):
            print(f"{level:<12}{m['size_mb']:>9.2f}{m['ppl']:>10.3f}{m['kl']:>11.2e}{m['top1']:>8.3f}{m['decode_tps']:>9.1f}")
    return wrote(res.artifact)


def add_deploy_commands(sub) -> None:
    add_stage(sub, "deploy", "LMDeploy stage: GGUF conversion, the quantization ladder, its measurements",
              Verb("run", cmd_run, "convert and quantize a model → gguf/<model>, measure it → quant/<model>", (
                  opt("--model", help="the model: an artifact (default model/sft), or the path of a local Hugging "
                                      "Face model directory or a .gguf file"),
                  opt("--levels", nargs="+", help="quantization levels (default: the whole ladder)"),
                  opt("--n-tokens", type=int, help="held-out tokens to measure on"),
                  opt("--n-ctx", type=int, help="the context window of each measurement"),
                  opt("--decode-tokens", type=int, help="greedy tokens for the decode speed"),
                  opt("--transformers", nargs="*",
                      help="transformers rows to measure too (default: all; none with an empty list)"))))
