"""``puyu-lab deploy …``: the GGUF ladder of a model and its measurements."""
from __future__ import annotations

import argparse


def _config(args: argparse.Namespace):
    from ..profiles import get_profile, overrides
    from .config import DeployConfig

    changes = overrides(args, "model", "levels", "n_tokens", "n_ctx", "decode_tokens", "transformers")
    return DeployConfig.for_profile(get_profile(args.profile), **changes)


def cmd_run(args: argparse.Namespace) -> int:
    from ..workspace import Workspace
    from .entry import run

    res = run(Workspace(args.home), _config(args))
    print(f"wrote {res.gguf.name}: {', '.join(res.gguf.metrics['levels'])}")
    print(f"{'level':<12}{'MB':>9}{'ppl':>10}{'KL':>11}{'top-1':>8}{'tok/s':>9}")
    for level, m in res.artifact.metrics.items():
        if isinstance(m, dict):
            print(f"{level:<12}{m['size_mb']:>9.2f}{m['ppl']:>10.3f}{m['kl']:>11.2e}{m['top1']:>8.3f}{m['decode_tps']:>9.1f}")
    print(f"wrote {res.artifact.name}")
    return 0


def add_deploy_commands(sub) -> None:
    p = sub.add_parser("deploy", help="LMDeploy stage: GGUF conversion, the quantization ladder, its measurements")
    ps = p.add_subparsers(dest="deploy_cmd", required=True)
    r = ps.add_parser("run", help="convert and quantize a model → gguf/<model>, measure it → quant/<model>")
    r.add_argument("--profile", default=None)
    r.add_argument("--model", default=None, help="the model: an artifact (default model/sft), or the path of a local "
                   "Hugging Face model directory or a .gguf file")
    r.add_argument("--levels", nargs="+", default=None, help="quantization levels (default: the whole ladder)")
    r.add_argument("--n-tokens", type=int, default=None, help="held-out tokens to measure on")
    r.add_argument("--n-ctx", type=int, default=None, help="the context window of each measurement")
    r.add_argument("--decode-tokens", type=int, default=None, help="greedy tokens for the decode speed")
    r.add_argument("--transformers", nargs="*", default=None,
                   help="transformers rows to measure too (default: all; none with an empty list)")
    r.add_argument("--home", default=None)
    r.set_defaults(fn=cmd_run)
