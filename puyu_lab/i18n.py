"""The zh/en string table for panels and lab headings. ``puyu_lab.set_language("zh"|"en")``."""
from __future__ import annotations

import os



def default_language() -> str:
    """``$PUYU_LAB_LANG`` (zh or en), else the system's language (``$LC_ALL`` / ``$LC_MESSAGES`` / ``$LANG``:
    zh_CN.UTF-8 → zh), else en."""
    chosen = os.environ.get("PUYU_LAB_LANG", "").strip().lower()
    if chosen:
        return "zh" if chosen.startswith("zh") else "en"
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        loc = os.environ.get(var, "").strip().lower()
        if loc and loc not in ("c", "posix", "c.utf-8"):
            return "zh" if loc.startswith("zh") else "en"
    return "en"


_LANG = default_language()

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
    # the trace panel's status badge (a run's Trace.status) and its units
    "status_running": ("running", "运行中"),
    "status_answered": ("answered", "已回答"),
    "status_max_turns": ("out of turns", "轮数用完"),
    "status_stopped": ("stopped", "已停止"),
    "status_error": ("error", "出错"),
    "tokens": ("tokens", "个词元"),
    "tok": ("tok", "词元"),
    "model_read": ("what the model read", "模型读到的原文"),
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
    "warn": ("warn", "警告"),
    "fail": ("fail", "未通过"),
    "fix": ("Fix", "修复方法"),
    "profile": ("Profile", "配置档"),
    "description": ("Description", "说明"),
    "device": ("Device", "设备"),
    "fits": ("Fits here", "本机可用"),
    "yes": ("yes", "是"),
    "no": ("no", "否"),
    "chain_map": ("The chain", "全链路"),
    "stop": ("Stop", "停止"),
    "lesson_title": ("Watch in-context learning appear", "看上下文学习出现"),
    "first_showing": ("first showing", "第一遍"),
    "second_showing": ("second showing", "第二遍"),
    "nll_per_token": ("loss per token (nats)", "每个词元的损失 (nats)"),
    "cliff_at": ("the cliff at step", "断崖出现在第几步"),
    "no_cliff_yet": ("no cliff yet", "还没有出现断崖"),
    # the lesson's figures (panels.induction)
    "copy_curve_title": ("Copying from the context vs training tokens", "从上下文复制的能力 与 训练词元数"),
    "training_tokens": ("training tokens", "训练词元数"),
    "copy_gain": ("copy gain (nats/token)", "复制增益（nats/词元）"),
    "head_scores_title": ("Prefix-matching score per attention head", "每个注意力头的前缀匹配分数"),
    "head": ("head", "头"),
    "layer": ("layer", "层"),
    "attends_to": ("attends to position", "被关注的位置"),
    "query_position": ("query position", "查询位置"),
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
    "min_lang_score": ("min language score", "语言置信度下限"),
    "c4_lorem_ipsum": ("drop “lorem ipsum” text", "删除含 lorem ipsum 的文档"),
    "c4_curly_bracket": ("drop text with a “{” (code)", "删除含花括号 { 的文档（代码）"),
    "pii_before": ("before", "脱敏前"),
    "pii_after": ("after", "脱敏后"),
    "no_clusters": ("no near-duplicate clusters", "没有近重复簇"),
    "skipped_bad": ("bad record(s) skipped at load (skip_bad)", "条坏记录在加载时被跳过（skip_bad）"),
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
    "budget": ("budget", "时间预算"),
    "budget_steps": ("steps on this machine", "步（本机实测）"),
    "budget_probe": ("measuring the first steps …", "正在测量前几步的速度 …"),
    "mfu": ("model FLOP utilisation", "算力利用率 (MFU)"),
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
    "pareto": ("Pareto frontier", "帕累托前沿"),
    "rag_panel": ("HuixiangDou · retrieval-augmented QA", "茴香豆 · 检索增强问答"),
    "rag_hitk": ("hit@k on held-out questions", "留出问题的 hit@k"),
    "rag_refusal": ("Refusal threshold", "拒答阈值"),
    "rag_refusal_curve": ("Answering: precision / recall vs threshold", "回答的精确率 / 召回率与阈值"),
    "rag_drilldown": ("Per question", "逐题查看"),
    "rag_answers": ("answer in the reply", "回复含答案"),
    "relevance_threshold": ("relevance threshold (BM25 top score)", "相关度阈值（BM25 最高分）"),
    "precision": ("precision", "精确率"),
    "recall": ("recall", "召回率"),
    "answered": ("answered", "回答"),
    "refused": ("refused", "拒答"),
    "answerable": ("answerable", "可回答"),
    "unanswerable": ("unanswerable", "不可回答"),
    "with_retrieval": ("with retrieval", "有检索"),
    "without_retrieval": ("without retrieval", "无检索"),
    "free_form": ("free-form with passages", "有资料·自由生成"),
    "gold_chunk": ("the right chunk", "正确片段"),
    "not_in_index": ("its document is not in the index: the right reply is a refusal", "其文档不在索引中：应当拒答"),
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
    "type_map": ("Which tensor gets which type, per level", "每个张量在各级别的量化类型"),
    "type_map_hint": ("darker: more bits per weight; the _M mixes and the i-quants keep some tensors a step higher",
                      "颜色越深，每权重位数越多；_M 混合与 i-quant 让部分张量保持更高精度"),
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
    "kl_chat_mean": ("KL mean, chat replies", "平均 KL（对话回复）"),
    "kl_chat_p99": ("KL p99, chat replies", "KL p99（对话回复）"),
    "top1_chat": ("top-1, chat replies", "top-1（对话回复）"),
    "task_acc": ("held-out tasks solved", "留出任务正确率"),
    "task_panel": ("What each level still does: held-out tasks", "各量化等级还能做什么：留出任务"),
    "task_selfcog": ("self-cognition (name)", "自我认知（名字）"),
    "task_sentiment": ("sentiment", "情感判断"),
    "task_tool_choice": ("tool choice", "工具选择"),
    "tasks_lost": ("{level} loses {lost} of the items {ref} solves and solves {gained} it does not; the lost ones:",
                   "{ref} 答对而 {level} 答错 {lost} 题，反之 {gained} 题；答错的："),
    "ppl_chat": ("PPL, chat replies", "困惑度（对话回复）"),
    "bench_pp_tps": ("llama-bench prefill/s", "llama-bench 预填充/秒"),
    "bench_pp_sd": ("± sd", "± 标准差"),
    "bench_tg_tps": ("llama-bench decode/s", "llama-bench 解码/秒"),
    "bench_tg_sd": ("± sd", "± 标准差"),
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
    # preference tuning (DPO / ORPO)
    "rewards_dpo": ("implicit rewards: β·log π/π_ref", "隐式奖励 β·log π/π_ref"),
    "rewards_orpo": ("rewards: β·mean log π per token (no reference)", "奖励 β·每词元平均 log π（无参考模型）"),
    "reward_accuracy": ("reward accuracy", "奖励准确率"),
    "chosen": ("chosen", "选中"),
    "rejected": ("rejected", "拒绝"),
    "margin": ("margin", "差距"),
    "train": ("train", "训练"),
    "heldout": ("held-out", "留出"),
    "before": ("before", "之前"),
    "after": ("after", "之后"),
    "identity": ("identity", "身份认知"),
    "sentiment": ("sentiment", "情感"),
    "tool": ("tool use", "工具调用"),
    "notool": ("no tool needed", "无需工具"),
    "custom": ("your pairs", "自定义"),
    "all": ("all", "全部"),
    "pref_accuracy": ("Held-out preference accuracy 留出偏好准确率", "留出偏好准确率 Held-out preference accuracy"),
    "pref_accuracy_note": ("share of held-out pairs whose chosen answer has the higher log-probability given the prompt",
                           "留出样本中，选中回答的对数概率高于拒绝回答的比例"),
    "pair_inspector": ("Pair inspector 偏好对检查", "偏好对检查 Pair inspector"),
    "pair_inspector_note": ("log p(chosen) / log p(rejected), summed over the answer's tokens; ✓ = chosen ranks first",
                            "log p(选中) / log p(拒绝)，按回答的词元求和；✓ = 选中排在前面"),
}


# deploy.quantize's LADDER and FLOAT_LEVELS (tests/test_chain_labels.py holds this to them)
_LEVELS = ("F32", "F16", "BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q3_K_M", "Q2_K")

# The artifacts' key figures: the metric keys among an artifact's first four metrics, which the chain sidebar and
# `puyu-lab status` show (Workspace.chain / table). key -> (en, zh), apart from STRINGS: a metric key may name a
# panel label too ("train", "documents") and mean a count here. tests/test_chain_labels.py fails on a key a real
# workspace shows without a label here.
FIGURES: dict[str, tuple[str, str]] = {
    # corpus/* (data)
    "documents": ("documents", "文档数"),
    "characters": ("characters", "字符数"),
    "kept_fraction": ("kept fraction", "保留比例"),
    "train": ("train split", "训练集条数"),
    "heldout": ("held-out split", "留出集条数"),
    # corpus/course-* (the course build's corpora)
    "natural_tokens": ("natural-text tokens", "自然文本词元数"),
    "natural_repeats": ("natural-text passes", "自然文本重复遍数"),
    "copy_rich_tokens": ("copy-rich tokens", "复制型文本词元数"),
    "copy_rich_documents": ("copy-rich documents", "复制型文档数"),
    # tokenizer/* and model/base (pretrain)
    "vocab_size": ("vocabulary size", "词表大小"),
    "chars_per_token_zh": ("chars/token (zh)", "中文每词元字符数"),
    "chars_per_token_en": ("chars/token (en)", "英文每词元字符数"),
    "byte_fallback_rate_zh": ("byte fallback (zh)", "中文字节回退率"),
    "steps": ("steps", "训练步数"),
    "max_steps": ("planned steps", "计划步数"),
    "stopped": ("stopped early", "提前停止"),
    "eval_loss_first": ("first held-out loss", "初始留出集损失"),
    "eval_loss": ("held-out loss", "留出集损失"),
    # model/rl, model/rl-naive (GRPO): the reward it was trained with, its mean at the first and the last step
    "reward": ("reward", "奖励"),
    "reward_first": ("first step's mean reward", "第一步的平均奖励"),
    "reward_last": ("last step's mean reward", "最后一步的平均奖励"),
    "kl_max": ("largest KL to the reference", "对参考模型的最大 KL"),
    # sft/data (the training mix by kind, then the held-out sets) and model/sft, adapter/sft (fine-tune)
    "train_self": ("train · self-introduction", "训练集·自我认知"),
    "train_dialog": ("train · dialogues", "训练集·多轮对话"),
    "train_sentiment": ("train · sentiment", "训练集·情感判断"),
    "train_tool": ("train · tool calls", "训练集·工具调用"),
    "train_date": ("train · date tool", "训练集·日期工具"),
    "train_notool": ("train · no tool needed", "训练集·无需工具"),
    "train_custom": ("train · your data", "训练集·自定义数据"),
    "train_identity": ("train · identity", "训练集·身份认知"),
    "selfcog_heldout": ("held-out · self-introduction", "留出集·自我认知"),
    "arithmetic_heldout": ("held-out · arithmetic", "留出集·算术"),
    "date_heldout": ("held-out · dates", "留出集·日期推算"),
    "notool_heldout": ("held-out · no tool needed", "留出集·无需工具"),
    "method": ("method", "训练方法"),
    "trainable_parameters": ("trainable parameters", "可训练参数量"),
    # pref/data (held-out pairs by source) and model/dpo, model/orpo (preference)
    "heldout_identity": ("held-out · identity", "留出集·身份认知"),
    "heldout_sentiment": ("held-out · sentiment", "留出集·情感判断"),
    "heldout_tool": ("held-out · tool use", "留出集·工具调用"),
    "heldout_notool": ("held-out · no tool needed", "留出集·无需工具"),
    "heldout_custom": ("held-out · your pairs", "留出集·自定义偏好对"),
    "tuning": ("tuning", "微调方式"),
    # gguf/* (deploy): the file size of each level
    "seconds": ("seconds", "用时（秒）"),
    **{f"size_mb_{lv}": (f"{lv} size (MB)", f"{lv} 文件大小 (MB)") for lv in _LEVELS},
    # agent/eval: the share of held-out tasks solved, with the tools and asked directly
    "arithmetic_with_tools": ("arithmetic · with tools", "算术·用工具答对率"),
    "arithmetic_direct": ("arithmetic · direct", "算术·直接回答答对率"),
    "date_with_tools": ("dates · with tools", "日期推算·用工具答对率"),
    "date_direct": ("dates · direct", "日期推算·直接回答答对率"),
    "notool_with_tools": ("no tool needed · with tools", "无需工具·用工具答对率"),
    "notool_direct": ("no tool needed · direct", "无需工具·直接回答答对率"),
    # the shipped course model's base, probed in lab 02
    "course_base_copy_gain": ("course base · copy gain (nats/token)", "课程基座·复制增益（nats/词元）"),
    "course_base_copied": ("course base · runs copied exactly", "课程基座·整段照抄比例"),
    # agent/eval-course: the shipped course assistant on its own held-out tasks
    "course_arithmetic_with_tools": ("course assistant · arithmetic with tools", "课程助手·算术用工具答对率"),
    "course_date_with_tools": ("course assistant · dates with tools", "课程助手·日期用工具答对率"),
    "course_notool_with_tools": ("course assistant · no tool needed", "课程助手·无需工具答对率"),
    "course_copy_gain": ("course assistant · copy gain (nats/token)", "课程助手·复制增益（nats/词元）"),
    "course_copied": ("course assistant · runs copied exactly", "课程助手·整段照抄比例"),
    # rag/index, rag/eval
    "chunks": ("chunks", "文本块数"),
    "dim": ("embedding dim", "向量维度"),
    "encoder_final_loss": ("encoder final loss", "稠密编码器最终损失"),
    "hybrid_hit@5": ("hybrid hit@5", "混合检索 hit@5"),
    "sparse_hit@5": ("sparse hit@5", "稀疏检索 hit@5"),
    "dense_hit@5": ("dense hit@5", "稠密检索 hit@5"),
    "answer_rag": ("answered right with retrieval", "有检索时的答对率"),
    "course_answer_rag_free": ("course assistant · right with retrieval (generative)", "课程助手·有检索生成式答对率"),
    "course_answer_rag": ("course assistant · right with retrieval (extractive)", "课程助手·有检索抽取式答对率"),
    "course_answer_none": ("course assistant · right without retrieval", "课程助手·无检索答对率"),
}


def set_language(lang: str | None) -> None:
    """``zh`` or ``en`` (a locale name such as ``zh_CN`` counts as its language); None: :func:`default_language`."""
    global _LANG
    if lang is None:
        _LANG = default_language()
        return
    norm = str(lang).strip().lower()
    if not norm.startswith(("zh", "en")):  # a learner calls puyu_lab.set_language, which says so in both languages
        raise ValueError(f"language must be 'zh' or 'en', not {lang!r}")
    _LANG = norm[:2]


def get_language() -> str:
    return _LANG


def tr(zh: str, en: str) -> str:
    """A sentence in the current language, its two versions written side by side where it is used (a lab's
    printed line: ``print(pl.tr(f"训练了 {n} 步", f"trained {n} steps"))``)."""
    return zh if _LANG == "zh" else en


def t(key: str) -> str:
    """The label for ``key`` in the current language (the key itself if unknown)."""
    return _pick(STRINGS, key, _LANG)


def figure_label(key: str, lang: str | None = None) -> str:
    """The label of the metric ``key`` (:data:`FIGURES`) in ``lang`` (default: the current language); the key itself
    if it has none."""
    return _pick(FIGURES, key, lang or _LANG)


def figure_labels(keys) -> dict[str, dict[str, str]]:
    """``{key: {"en": …, "zh": …}}`` for the metric ``keys``: what the sidebar shows in its own language."""
    return {k: {lang: figure_label(k, lang) for lang in ("en", "zh")} for k in keys}


def _pick(table: dict[str, tuple[str, str]], key: str, lang: str) -> str:
    pair = table.get(key)
    if pair is None:
        return key
    return pair[1] if lang == "zh" else pair[0]


def both(key: str) -> str:
    """Chinese and English together, for headings: '清洗漏斗 Cleaning funnel'."""
    pair = STRINGS.get(key)
    return key if pair is None else f"{pair[1]} {pair[0]}"
