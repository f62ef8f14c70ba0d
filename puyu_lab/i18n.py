"""The zh/en string table for panels and lab headings. ``puyu_lab.set_language("zh"|"en")``."""
from __future__ import annotations

import os

_LANG = os.environ.get("PUYU_LAB_LANG", "en")

# key -> (en, zh). The InternLM product names stay as the ecosystem writes them.
STRINGS: dict[str, tuple[str, str]] = {
    "stage": ("Stage", "阶段"),
    "lab": ("Lab", "实验"),
    "artifact": ("Artifact", "产物"),
    "status": ("Status", "状态"),
    "created": ("Created", "创建时间"),
    "figures": ("Key figures", "关键指标"),
    "present": ("present", "已就绪"),
    "missing": ("missing", "缺失"),
    "stale": ("stale", "已过期"),
    "check": ("Check", "检查项"),
    "value": ("Value", "取值"),
    "ok": ("ok", "通过"),
    "fix": ("Fix", "修复方法"),
    "profile": ("Profile", "配置档"),
    "description": ("Description", "说明"),
    "device": ("Device", "设备"),
    "minutes": ("Minutes (chain)", "用时（分钟）"),
    "fits": ("Fits here", "本机可用"),
    "yes": ("yes", "是"),
    "no": ("no", "否"),
    "chain_map": ("The chain", "全链路"),
    "stop": ("Stop", "停止"),
    "export": ("Export", "导出"),
    "documents": ("documents", "文档"),
    "characters": ("characters", "字符"),
    "kept": ("kept", "保留"),
    "dropped": ("dropped", "删除"),
    "reason": ("Reason", "原因"),
    "source": ("Source", "来源"),
    "funnel": ("Cleaning funnel", "清洗漏斗"),
    "rules": ("Rules", "规则"),
    "histogram": ("Signal histogram", "信号分布"),
    "samples": ("Dropped samples", "被删样本"),
    "clusters": ("Near-duplicate clusters", "近重复簇"),
    "pii": ("PII before / after", "隐私信息 前 / 后"),
    "pii_scrub": ("Scrub PII", "隐私脱敏"),
    "signal": ("Signal", "信号"),
    "threshold": ("Threshold", "阈值"),
    "exported": ("Exported", "已导出"),
    "est_jaccard": ("estimated Jaccard", "估计 Jaccard"),
    "true_jaccard": ("true Jaccard", "真实 Jaccard"),
    # the cleaning stages (rule groups and dedup steps)
    "language": ("Language ID", "语言识别"),
    "gopher_repetition": ("Gopher repetition", "Gopher 重复"),
    "gopher_quality": ("Gopher quality", "Gopher 质量"),
    "fineweb": ("FineWeb quality", "FineWeb 质量"),
    "c4": ("C4 quality", "C4 质量"),
    "exact_dedup": ("Exact dedup", "精确去重"),
    "near_dedup": ("Near dedup (MinHash)", "MinHash 近似去重"),
    "raw": ("Raw", "原始"),
    "loss": ("Loss", "损失"),
    "train_loss": ("train loss", "训练损失"),
    "eval_loss": ("held-out loss", "验证损失"),
    "learning_rate": ("Learning rate", "学习率"),
    "step": ("step", "步"),
    "resume": ("Resume", "继续"),
    "samples_gen": ("Generations from fixed prompts", "固定提示词的生成"),
    "training": ("training", "训练中"),
    "stopping": ("stopping at the next step, with a checkpoint", "将在下一步停止并保存检查点"),
    "stopped": ("stopped", "已停止"),
    "finished": ("finished", "已完成"),
    "replay": ("replay of a finished run", "回放已完成的训练"),
}


def set_language(lang: str) -> None:
    global _LANG
    if lang not in ("en", "zh"):
        raise ValueError(f"language must be 'en' or 'zh', not {lang!r}")
    _LANG = lang


def get_language() -> str:
    return _LANG


def t(key: str) -> str:
    """The label for ``key`` in the current language (the key itself if unknown)."""
    pair = STRINGS.get(key)
    if pair is None:
        return key
    return pair[1] if _LANG == "zh" else pair[0]


def both(key: str) -> str:
    """Chinese and English together, for headings: '清洗漏斗 Cleaning funnel'."""
    pair = STRINGS.get(key)
    return key if pair is None else f"{pair[1]} {pair[0]}"
