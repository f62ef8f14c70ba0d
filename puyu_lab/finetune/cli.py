"""``puyu-lab finetune …``: build SFT data, check a custom file, train (full / LoRA / QLoRA) and merge."""
from __future__ import annotations

from dataclasses import replace

from ..stagecli import RUN_LENGTH, Verb, add_stage, check_file, ended, opt, stage_config, wrote


def _config(args, *, check: bool):
    """The SFTConfig of the profile or of ``--config``; ``check``: the verb trains (the profile's hardware is
    checked now)."""
    from ..profiles import get_profile
    from .config import SFTConfig

    def load(saved: dict):
        cfg = SFTConfig.from_dict(saved)
        if args.profile != "gpu":
            return cfg
        gpu = SFTConfig.for_profile(get_profile("gpu"))  # repeat a CPU run on a real model: the gpu profile's base and sizes
        return replace(cfg, method="qlora", base=gpu.base, learning_rate=gpu.learning_rate,
                       max_length=gpu.max_length, batch_size=gpu.batch_size, grad_accum=gpu.grad_accum)

    cfg = stage_config(args, SFTConfig, "method", "custom_data", check=check, load=load)
    data = cfg.data
    if getattr(args, "name", None):
        data = replace(data, assistant_name=args.name)
    if getattr(args, "owner", None):
        data = replace(data, owner=args.owner)
    return replace(cfg, data=data)


def cmd_data(args) -> int:
    from ..workspace import Workspace
    from .train import prepare_data

    return wrote(prepare_data(Workspace(args.home), _config(args, check=False)), metrics=True)


def cmd_check(args) -> int:
    """Like ``xtuner check-custom-dataset``: every bad record with its line and reason."""
    from .data import load_custom

    return check_file(args.file, load_custom, "record")


def _report(res) -> int:
    m = res.metrics
    print(f"{ended(res)} ({m['method']}): held-out self-cognition {m['selfcog_heldout_acc']:.0%}, eval loss "
          f"{m['eval_loss']:.3f}, training state {m['memory']['total_mb']} MB")
    return 0


def cmd_train(args) -> int:
    from ..workspace import Workspace
    from .train import finetune

    return _report(finetune(Workspace(args.home), _config(args, check=True), resume=args.resume))


def cmd_run(args) -> int:
    from ..workspace import Workspace
    from .entry import run

    return _report(run(Workspace(args.home), _config(args, check=True)))


DATA = (opt("--config", help="an SFTConfig as JSON (e.g. a run's sft_config.json)"),
        opt("--name", help="the assistant's name (self-cognition data)"),
        opt("--owner", help="who made it"),
        opt("--custom", dest="custom_data", metavar="CUSTOM",
            help="custom data: OpenAI messages .jsonl or Alpaca .json"))
TRAINING = (*DATA, opt("--method", choices=("full", "lora", "qlora")), *RUN_LENGTH)


def add_finetune_commands(sub) -> None:
    add_stage(sub, "finetune", "XTuner stage: SFT data, full / LoRA / QLoRA, merge → model/sft",
              Verb("data", cmd_data, "build sft/data", DATA),
              Verb("train", cmd_train, "train and merge model/sft", (*TRAINING, opt("--resume", action="store_true"))),
              Verb("run", cmd_run, "the whole stage: sft/data, then train and merge model/sft", TRAINING),
              Verb("check", cmd_check, "validate a custom data file, like `xtuner check-custom-dataset`",
                   (opt("file"),), profile=False, home=False))
