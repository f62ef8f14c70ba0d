"""The zh/en string table for panels and lab headings. ``puyu_lab.set_language("zh"|"en")``."""
from __future__ import annotations

import os

_LANG = os.environ.get("PUYU_LAB_LANG", "en")

# key -> (en, zh). The InternLM product names stay as the ecosystem writes them.
STRINGS: dict[str, tuple[str, str]] = {
    "stage": ("Stage", "阶段"),
    "agent_trace": ("Agent trace", "智能体轨迹"),
    "step_thought": ("Thought", "思考"),
    "step_call": ("Tool call", "工具调用"),
    "step_observation": ("Observation", "观察"),
    "step_final": ("Final answer", "最终回答"),
    "step_error": ("Parse error", "解析错误"),
    "prompt_sent": ("Exact prompt sent", "发送的完整提示"),
    "raw_output": ("Raw model output", "模型原始输出"),
    "parse_result": ("Parse result", "解析结果"),
    "why_no_tool": ("Why was no tool called?", "为什么没有调用工具？"),
    "turn": ("Turn", "轮次"),
    "question": ("Question", "问题"),
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
    "numerics": ("precision", "数值精度"),
    "stopping": ("stopping at the next step, with a checkpoint", "将在下一步停止并保存检查点"),
    "stopped": ("stopped", "已停止"),
    "finished": ("finished", "已完成"),
    "replay": ("replay of a finished run", "回放已完成的训练"),
    "warning": ("warning", "警告"),
    "chat_title": ("Chat · 对话", "对话 · Chat"),
    "chat_placeholder": ("Type a message …", "输入消息 …"),
    "send": ("Send", "发送"),
    "clear": ("Clear", "清空"),
    "max_tokens": ("max tokens", "最大长度"),
    "temperature": ("temperature", "温度"),
    "inspector": ("Chat template inspector", "对话模板检查"),
    "trained": ("trained", "参与训练"),
    "context": ("context (not trained)", "上下文（不训练）"),
    "template_ok": ("every assistant turn ends in a trained <|im_end|>", "每个助手回合都以参与训练的 <|im_end|> 结尾"),
    "method": ("Method", "方法"),
    "memory_mb": ("Training state (MB)", "训练状态内存 (MB)"),
    "selfcog": ("Self-cognition (held-out)", "自我认知（留出集）"),
    "backend": ("backend", "后端"),
    "eval_panel": ("OpenCompass · evaluation", "OpenCompass · 评测"),
    "eval_bars": ("Score per task (main metric)", "各任务得分（主指标）"),
    "eval_radar": ("Across tasks", "跨任务雷达图"),
    "sample_browser": ("Samples", "样本浏览"),
    "only_disagree": ("only where A and B disagree", "只看 A 与 B 不一致的"),
    "samples_shown": ("samples", "条样本"),
    "task": ("task", "任务"),
    "dataset": ("dataset", "数据集"),
    "metric": ("metric", "指标"),
    "mode": ("mode", "模式"),
    "quant_panel": ("LMDeploy · quantization trade-offs", "LMDeploy · 量化权衡"),
    "tradeoff_title": ("Size vs divergence from the reference (marker size: decode speed)", "体积 与 偏离参考的程度（点大小：解码速度）"),
    "file_size_mb": ("file size (MB)", "文件大小 (MB)"),
    "sort_by": ("sort by", "排序"),
    "levels": ("levels", "量化等级"),
    "level": ("level", "等级"),
    "prompt": ("prompt", "提示词"),
    "generate": ("Generate", "生成"),
    "side_by_side": ("Side by side: greedy continuations", "并排对比：贪心续写"),
    "kl_heatmap": ("Where a level diverges: per-token KL", "逐 token KL：哪里开始偏离"),
    "kl_heatmap_hint": ("red = this level's next-token distribution departs from the reference's", "越红 = 与参考的下一词分布差异越大"),
    "size_mb": ("size (MB)", "大小 (MB)"),
    "bits_per_weight": ("bits/weight", "每权重位数"),
    "rss_mb": ("RSS after load (MB)", "加载后常驻内存 (MB)"),
    "model_buffer_mb": ("weights buffer (MB)", "权重缓冲 (MB)"),
    "kv_cache_mb": ("KV cache (MB)", "KV 缓存 (MB)"),
    "kl_median": ("KL median", "KL 中位数"),
    "kl_p999": ("KL p99.9", "KL p99.9"),
    "kl_max": ("KL max", "KL 最大"),
    "dp_mean": ("Δp mean (%)", "Δp 均值 (%)"),
    "dp_rms": ("Δp RMS (%)", "Δp 均方根 (%)"),
    "prefill_sd": ("± sd", "± 标准差"),
    "decode_sd": ("± sd", "± 标准差"),
    "threads": ("threads", "线程"),
    "load_avg": ("load (1 min)", "负载 (1 分钟)"),
    "ppl": ("PPL", "困惑度"),
    "delta_ppl": ("ΔPPL", "ΔPPL"),
    "kl_mean": ("KL mean", "平均 KL"),
    "kl_p99": ("KL p99", "KL p99"),
    "top1": ("top-1 same", "top-1 一致"),
    "prefill_tps": ("prefill tok/s", "预填充 tok/s"),
    "decode_tps": ("decode tok/s", "解码 tok/s"),
    "memory_whatif": ("Memory what-if", "显存估算"),
    "model": ("model", "模型"),
    "add": ("Add", "添加"),
    "weights": ("weights", "权重"),
    "context": ("context", "上下文"),
    "parameters": ("parameters", "参数"),
    "fits_yes": ("fits", "放得下"),
    "fits_no": ("does not fit", "放不下"),
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
