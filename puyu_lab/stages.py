"""The nine stages of the chain: who produces which artifact, and in which lab.

This table is the one place that knows the chain's shape. The workspace uses it to name the
lab that produces a missing input, the tour and ``puyu-lab status`` use it to draw the chain map.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    key: str
    zh: str  # the ecosystem's own name for the stage
    en: str
    lab: str  # notebook in labs/
    produces: tuple[str, ...]  # artifact names (or name prefixes ending in "/")
    needs: tuple[str, ...] = ()  # what it reads of other stages (ws.for_stage(key).get refuses any other name)
    # what its engines also read and write outside its lab: the course build (puyu_lab/course) runs the pretrain and
    # fine-tune stages on its own corpora and phases, in a workspace of its own
    course: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        return f"{self.zh} · {self.en}"


COURSE_PHASES = ("a", "copy-256", "copy-1k", "copy", "b")  # CourseConfig().phases (a test holds them equal)
COURSE_CORPORA = tuple(f"corpus/course-{p}" for p in COURSE_PHASES)
COURSE_MODELS = tuple(f"model/course-{p}" for p in COURSE_PHASES)

STAGES: tuple[Stage, ...] = (
    Stage("data", "书生·万卷", "Data", "01_data.ipynb", ("corpus/",)),
    Stage("pretrain", "InternLM-Train", "Pretrain", "02_pretrain.ipynb",
          ("tokenizer/", "model/base", "model/base-"), ("corpus/clean",), course=COURSE_CORPORA + COURSE_MODELS),
    Stage("finetune", "XTuner", "Fine-tune", "03_finetune.ipynb",
          ("model/sft", "adapter/", "sft/"), ("model/base", "tokenizer/spm", "corpus/clean"), course=COURSE_MODELS),
    Stage("preference", "XTuner DPO", "Preference", "04_preference.ipynb", ("pref/", "model/dpo", "model/orpo"),
          ("model/sft", "sft/data", "corpus/clean")),
    # the policy is the shipped course assistant (or model/sft); sft/data gives the tasks' numbers and questions
    Stage("rl", "GRPO", "RL", "05_rl.ipynb", ("model/rl", "model/rl-"), ("model/sft", "sft/data")),
    Stage("deploy", "LMDeploy", "Deploy", "06_deploy.ipynb",
          ("gguf/", "quant/"), ("model/sft", "model/base", "corpus/clean", "sft/data", "model/rl")),
    Stage("eval", "OpenCompass", "Evaluate", "07_eval.ipynb", ("eval/",),
          ("model/base", "model/sft", "sft/data", "corpus/clean", "gguf/", "pref/data", "model/dpo", "model/orpo",
           "model/rl")),
    Stage("agent", "Lagent / AgentLego", "Apply", "08_agent.ipynb", ("agent/",),
          ("model/sft", "sft/data", "corpus/clean", "gguf/", "model/rl")),
    Stage("rag", "茴香豆 HuixiangDou", "RAG", "09_rag.ipynb", ("rag/",), ("corpus/clean", "model/base", "model/sft")),
)

# stages whose engines exist but whose lab is not written yet: their reads are declared (ws.for_stage works) and
# their artifacts are claimed, but the chain map, the tour and the lab list stay the ones above
PENDING: tuple[Stage, ...] = ()
ALL_STAGES: tuple[Stage, ...] = STAGES + PENDING


def _covers(patterns: tuple[str, ...], name: str) -> bool:
    # "corpus/" covers every corpus; "model/base-" every experiment beside model/base (model/base-adamw …)
    return any(name == p or (p.endswith(("/", "-")) and name.startswith(p)) for p in patterns)


def may_read(stage_key: str, name: str) -> bool:
    """Whether the stage ``stage_key`` declared (or itself produces) the artifact ``name``."""
    st = next(s for s in ALL_STAGES if s.key == stage_key)
    return _covers(st.produces, name) or _covers(st.needs, name) or _covers(st.course, name)


def stage_for_artifact(name: str) -> Stage | None:
    """The stage whose lab produces the artifact ``name`` (``None`` if no stage claims it)."""
    for stage in ALL_STAGES:
        if _covers(stage.produces, name):
            return stage
    return None

