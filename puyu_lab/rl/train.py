"""GRPO with trl's ``GRPOTrainer`` on an assistant (the shipped course assistant, or the learner's own), scored by checkable rewards (:mod:`.rewards`).

trl does the algorithm: sampling ``num_generations`` completions per prompt, the group-relative advantages, the
clipped policy loss, the KL to the frozen reference (``beta``), its logs (``reward``, ``reward_std`` over the batch,
``frac_reward_zero_std`` — the groups with no spread, which teach nothing —, ``kl``, ``completions/mean_length``, ``rewards/<function>/mean`` …). Written here by hand,
only what trl does not do:

- the completions the rewards read keep the protocol's markers (:func:`marked`): trl decodes them with
  ``skip_special_tokens=True``, which erases ``<|action_start|>`` and ``<|im_end|>``, so a reward could not tell a
  call from prose;
- the record of every sampled completion with its rewards, group by group (:class:`Recorder`), and the
  ``rl`` event per step: trl prints its completion table only to a terminal or a tracker;
- the artifact (``model/rl`` or ``model/rl-naive``): the policy, trl's log history, the samples, the config, the
  machine and the wall time, so that the figures can be recomputed (:mod:`.figures`).

The rollout is one assistant turn per prompt (why: :mod:`.rewards`).
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

from ..contracts.training import TrainResult
from ..errors import InputError
from ..events import Emitter, Event, StopFlag
from ..workspace import Artifact, Workspace
from .config import RLConfig
from .figures import per_step
from .rewards import reward_set
from .tasks import training_tasks

STAGE = "rl"


class RLResult(TrainResult):
    """A GRPO run (``model``: the trained policy); ``samples``: every scored completion."""

    samples: list


class Recorder:
    """Every completion a step sampled, with each reward function's score: filled by the :func:`marked` rewards as
    trl calls them, handed out per optimizer step by :meth:`take`."""

    def __init__(self, num_generations: int, weights: dict[str, float]):
        self.g = num_generations
        self.weights = weights
        self.current: dict | None = None
        self.samples: list[dict] = []

    def put(self, step: int, texts: list[str], columns: dict, name: str, rewards: list[float]) -> None:
        if self.current is None or self.current["step"] != step or self.current["texts"] != texts:
            self.flush()
            self.current = {"step": step, "texts": texts, "columns": columns, "rewards": {}}
        self.current["rewards"][name] = rewards

    def flush(self) -> list[dict]:
        cur, self.current = self.current, None
        if cur is None:
            return []
        rows = []
        for i, text in enumerate(cur["texts"]):
            scores = {k: v[i] for k, v in cur["rewards"].items()}
            rows.append({"step": cur["step"], "group": i // self.g, "kind": cur["columns"]["kind"][i],
                         "question": cur["columns"]["question"][i], "gold": cur["columns"]["gold"][i],
                         "completion": text, "rewards": scores,
                         "reward": sum(self.weights[k] * v for k, v in scores.items())})
        self.samples += rows
        return rows


def marked(fn: Callable, tok, recorder: Recorder) -> Callable:
    """``fn`` as trl calls it, reading the completions decoded from ``completion_ids`` with the protocol's markers
    kept, and recording its scores (trl names a function's figures by ``__name__``: kept)."""

    def reward(prompts=None, completions=None, completion_ids=None, trainer_state=None, **columns):
        texts = tok.batch_decode(completion_ids, skip_special_tokens=False)
        columns = {k: v for k, v in columns.items() if k in ("kind", "gold", "question")}
        out = fn(texts, **columns)
        step = (trainer_state.global_step + 1) if trainer_state is not None else 0
        recorder.put(step, texts, columns, fn.__name__, out)
        return out

    reward.__name__ = fn.__name__
    reward.__doc__ = fn.__doc__
    return reward


def grpo_config(cfg: RLConfig, out, numerics, weights):
    from trl import GRPOConfig

    return GRPOConfig(output_dir=str(out), per_device_train_batch_size=cfg.prompts_per_step * cfg.num_generations,
                      num_generations=cfg.num_generations, max_completion_length=cfg.max_completion_tokens,
                      temperature=cfg.temperature, beta=cfg.beta, learning_rate=cfg.learning_rate,
                      max_steps=cfg.max_steps, lr_scheduler_type="constant", logging_steps=cfg.log_every,
                      logging_first_step=True, reward_weights=weights, save_strategy="no", report_to="none",
                      use_cpu=numerics.device != "cuda", bf16=numerics.bf16, fp16=numerics.fp16, seed=cfg.seed,
                      disable_tqdm=not cfg.progress_bar, dataloader_num_workers=0, gradient_checkpointing=False,
                      activation_checkpointing=False)


def _rl_callback(em: Emitter, recorder: Recorder, budget_s: float | None, min_steps: int | None = None):
    from transformers import TrainerCallback

    class RLCallback(TrainerCallback):
        """Each step's samples into the record; each log into an ``rl`` event (trl's figures by their names, the
        step's groups); a time budget ends the run at the step that crosses it, never before ``min_steps``
        (constant learning rate: nothing of the schedule is lost)."""

        def __init__(self):
            self.rows: list[dict] = []
            self.t0 = None

        def on_train_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            self.rows = recorder.flush()
            if budget_s is not None and state.global_step >= (min_steps or 1) \
                    and time.perf_counter() - self.t0 >= budget_s:
                control.should_training_stop = True

        def on_log(self, args, state, control, logs=None, **kw):
            logs = dict(logs or {})
            if "reward" not in logs:
                return
            groups: dict[int, dict] = {}
            for r in self.rows:
                g = groups.setdefault(r["group"], {"question": r["question"], "kind": r["kind"], "gold": r["gold"],
                                                   "samples": []})
                g["samples"].append({"completion": r["completion"], "reward": r["reward"], "rewards": r["rewards"]})
            mine = (per_step(self.rows) or [{}])[0]  # the step's figures from its completions (rl.figures)
            em.emit("rl", step=state.global_step, max_steps=state.max_steps, reward=logs.get("reward"),
                    reward_std=logs.get("reward_std"), group_std=mine.get("group_std"), correct=mine.get("correct"),
                    notool_called=mine.get("notool_called"), kl=logs.get("kl"),
                    mean_length=logs.get("completions/mean_length"),
                    extra={k: v for k, v in logs.items() if isinstance(v, (int, float))},
                    groups=list(groups.values()))

    return RLCallback()


def train(ws: Workspace, cfg: RLConfig | None = None, *, on_event: Callable[[Event], None] | None = None,
          stop: StopFlag | None = None, save: bool = True) -> RLResult:
    """GRPO on ``cfg.model`` with the reward ``cfg.reward`` over :func:`.tasks.training_tasks`; save
    ``cfg.output`` with its figures."""
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, PrinterCallback, set_seed

    from ..events import trainer_callback
    from ..models.tokenizer import load_tokenizer
    from ..numerics import machine, resolve

    ws = ws.for_stage(STAGE)  # reads only what stages.py declares for the stage
    cfg = replace(cfg or RLConfig.for_profile())
    em = Emitter(STAGE, on_event)
    start_path, start_art = policy(ws, cfg.model)
    set_seed(cfg.seed)
    tok = load_tokenizer(start_path)
    if not tok.chat_template:
        raise InputError(f"{cfg.model} has no chat template: GRPO starts from a chat model — the course "
                         "assistant (model='course') or the fine-tune lab's model/sft (03_finetune.ipynb)",
                         zh=f"{cfg.model} 没有对话模板：GRPO 要从对话模型出发——课程助手"
                            "（model='course'）或微调实验产出的 model/sft（03_finetune.ipynb）")
    tasks = training_tasks(ws, cfg.tasks)
    sft_data = ws.get("sft/data")
    cuda = torch.cuda.is_available()
    numerics = resolve(cfg.bf16, "cuda" if cuda else "cpu")
    em.emit("numerics", **numerics.to_dict(), summary=numerics.summary())
    model = AutoModelForCausalLM.from_pretrained(str(start_path), dtype=torch.float32)
    fns, weights = reward_set(cfg.reward)
    recorder = Recorder(cfg.num_generations, {f.__name__: w for f, w in zip(fns, weights)})
    rows = [{"prompt": [{"name": "", **m} for m in t["prompt"]], "kind": t["kind"], "gold": str(t["gold"]),
             "question": t["question"]} for t in tasks]
    em.emit("data", reward=cfg.reward, prompts=len(rows), **{k: sum(r["kind"] == k for r in rows)
                                                            for k in ("arithmetic", "date", "notool")})
    out = ws.root / "runs" / STAGE / cfg.reward
    if out.exists():
        shutil.rmtree(out)
    from trl import GRPOTrainer

    prompt_len = len(tok.apply_chat_template(rows[0]["prompt"], add_generation_prompt=True, tokenize=True,
                                             return_dict=True)["input_ids"])
    cb = trainer_callback(em, tokens_per_step=cfg.prompts_per_step * cfg.num_generations *
                          (prompt_len + cfg.max_completion_tokens), stop=stop)
    from ..budget import budget_scale

    rl_cb = _rl_callback(em, recorder, None if cfg.budget_s is None else cfg.budget_s * budget_scale(), cfg.min_steps)
    trainer = GRPOTrainer(model=model, reward_funcs=[marked(f, tok, recorder) for f in fns],
                          args=grpo_config(cfg, out, numerics, weights), train_dataset=datasets.Dataset.from_list(rows),
                          processing_class=tok, callbacks=[cb, rl_cb])
    if not cfg.progress_bar:
        trainer.remove_callback(PrinterCallback)
    if stop is not None:
        stop.check()
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    state = trainer.state
    stopped = cb.stopped and state.global_step < state.max_steps
    history = list(state.log_history)
    samples = recorder.samples
    steps = per_step(samples)
    logged = [h for h in history if "reward" in h]
    metrics = {
        "reward": cfg.reward, "steps": state.global_step, "max_steps": state.max_steps,
        "reward_first": logged[0]["reward"] if logged else None, "reward_last": logged[-1]["reward"] if logged else None,
        "kl_max": max((h.get("kl", 0.0) for h in logged), default=None) if cfg.beta else None,
        "stopped": stopped, "seconds": round(seconds, 1), "precision": numerics.dtype, "prompts": len(rows),
        "group_size": cfg.num_generations, "machine": machine(),
        # trl's figures per step, as it logged them (the report card recomputes reward / reward_std from samples)
        "per_step": [{"step": h["step"], "reward": h.get("reward"), "reward_std": h.get("reward_std"),
                      "frac_reward_zero_std": h.get("frac_reward_zero_std"), "kl": h.get("kl"),
                      "mean_length": h.get("completions/mean_length"),
                      **{k: v for k, v in h.items() if k.startswith("rewards/") and k.endswith("/mean")}}
                     for h in logged],
        # the same from the saved completions, with the spread within groups (group_std) trl 1.x does not log
        "recomputed": steps,
    }
    trained = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False).float().eval()
    art = _save(ws, cfg, trained, tok, start_path, start_art, sft_data, history, samples, metrics) if save else None
    em.emit("done", **{k: v for k, v in metrics.items() if not isinstance(v, (dict, list))})
    res = RLResult(state.global_step, state.max_steps, stopped, history, metrics, art, trained)
    res.samples = samples
    return res


def policy(ws: Workspace, model: str) -> tuple[Path, Artifact | None]:
    """The policy's folder and, when it is an artifact of ``ws``, the artifact: ``"course"`` is the shipped course
    assistant, a path a model directory the learner brings, anything else an artifact name (``model/sft``)."""
    from ..artifacts import brought

    if model == "course":
        from ..models import course

        return course.course_path("assistant"), None
    p = brought(model)
    if p is not None:
        if p.suffix == ".gguf":
            raise InputError(f"{model}: GRPO trains a transformers model; a GGUF file cannot be trained — give the "
                             "Hugging Face model directory it was converted from",
                             zh=f"{model}：GRPO 训练的是 transformers 模型，GGUF 文件不能训练——请给出它转换前的 "
                                "Hugging Face 模型目录")
        return p, None
    art = ws.get(model)
    return art.path, art


def _save(ws, cfg, model, tok, start_path, start_art, sft_data, history, samples, metrics) -> Artifact:
    from transformers import GenerationConfig

    from ..models.tokenizer import save_tokenizer

    params = {"config": cfg.to_dict()}
    if start_art is None:  # the course assistant or a brought model: no artifact of this workspace, so its folder
        params["policy"] = str(start_path)
        if cfg.model == "course":
            from ..models import course

            params["policy_sha256"] = course.shipped_manifest()["files"]["course-assistant/model.safetensors"]["sha256"]
    parents = [a for a in (start_art, sft_data) if a is not None]
    with ws.write(cfg.output, kind="model", stage=STAGE, parents=parents, params=params) as w:
        model.generation_config = GenerationConfig.from_pretrained(str(start_path))
        model.save_pretrained(str(w.path))
        spm = start_path / "tokenizer.model"
        save_tokenizer(tok, w.path, spm if spm.is_file() else None)
        (w.path / "curve.json").write_text(json.dumps(history, indent=1), encoding="utf-8")
        with open(w.path / "samples.jsonl", "w", encoding="utf-8") as f:
            for s in samples:
                f.write(json.dumps(s, ensure_ascii=False) + "\n")
        (w.path / "rl_config.json").write_text(json.dumps(cfg.to_dict(), ensure_ascii=False, indent=1),
                                               encoding="utf-8")
        w.metrics.update(metrics)
    return ws.get(cfg.output)
