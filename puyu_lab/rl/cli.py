"""``puyu-lab rl …``: GRPO with the checked or the naive reward, and the rewards of a completion file."""
from __future__ import annotations

from ..stagecli import RUN_LENGTH, Verb, add_stage, ended, opt, stage_config, wrote


def _config(args, *, check: bool):
    """The RLConfig of the profile; ``check``: the verb trains (the profile's hardware is checked now)."""
    from .config import RLConfig

    return stage_config(args, RLConfig, "model", "reward", "num_generations", "beta", "learning_rate",
                        "max_completion_tokens", check=check)


def cmd_run(args) -> int:
    from ..i18n import tr
    from ..workspace import Workspace
    from .entry import run

    res = run(Workspace(args.home), _config(args, check=True))
    m = res.metrics
    print(tr(f"GRPO（{m['reward']} 奖励）{'已停止' if res.stopped else '完成'}：第 {res.steps}/{res.max_steps} 步，"
             f"用时 {m['seconds']} 秒", f"GRPO ({m['reward']} reward) {ended(res)} in {m['seconds']} s"))
    for row in m["per_step"][-3:]:
        kl = f"{row['kl']:.4f}" if row.get("kl") is not None else "—"
        print(f"  step {row['step']:<4} reward {row['reward']:+.3f}  std {row['reward_std']:.3f}  KL {kl}")
    return wrote(res.artifact)


def cmd_score(args) -> int:
    """Score a JSONL file of completions (``completion``, ``kind``, ``gold``) with a reward's functions."""
    import json

    from ..errors import InputError, read_text_file
    from ..i18n import tr
    from .rewards import score, total

    rows = []
    for i, line in enumerate(read_text_file(args.file, "completion file").splitlines(), 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            rows.append({"completion": r["completion"], "kind": r.get("kind", "notool"), "gold": str(r.get("gold", ""))})
        except (ValueError, KeyError, TypeError) as e:
            raise InputError(f"{args.file}:{i}: not a JSON object with a completion ({e})",
                             zh=f"{args.file}:{i}：不是含 completion 字段的 JSON 对象（{e}）") from None
    cols = {k: [r[k] for r in rows] for k in ("kind", "gold")}
    parts = score(args.reward, [r["completion"] for r in rows], **cols)
    sums = total(args.reward, [r["completion"] for r in rows], **cols)
    for i, r in enumerate(rows):
        each = "  ".join(f"{k} {v[i]:+.1f}" for k, v in parts.items())
        print(f"{i + 1:>3} {r['kind']:<10} {tr('总分', 'total')} {sums[i]:+.2f}  {each}")
    return 0


def add_rl_commands(sub) -> None:
    add_stage(sub, "rl", "GRPO stage: reinforcement learning from checkable rewards with trl → model/rl",
              Verb("run", cmd_run, "GRPO with the checked (or the naive) reward → model/rl (model/rl-naive)", (
                  opt("--model", help="the policy: course (the shipped course assistant, the default), an artifact such "
                                       "as model/sft, or a model directory"),
                  opt("--reward", choices=("checked", "naive")),
                  opt("--num-generations", type=int, help="the group size"),
                  opt("--beta", type=float, help="the KL term's weight"),
                  opt("--learning-rate", type=float),
                  opt("--max-completion-tokens", type=int),
                  *RUN_LENGTH)),
              Verb("score", cmd_score, "score a JSONL file of completions (completion, kind, gold) with a reward", (
                  opt("file"), opt("--reward", choices=("checked", "naive"), default="checked")),
                   profile=False, home=False))
