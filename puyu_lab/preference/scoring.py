"""Pairs as trl tokenizes them, and held-out scoring: each pair rendered by the chat template and cut
into prompt / chosen / rejected token ids exactly as trl's DPO and ORPO trainers do, then the sum of
log-probabilities of chosen and rejected given the prompt, and the preference accuracy per source."""
from __future__ import annotations

import weakref

from ..errors import Msg
from ..models.template import render

# per tokenizer: (end-of-turn token, whether it adds BOS itself); dropped with the tokenizer
_TURN_FORMATS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def end_of_turn(tok) -> str | None:
    """The token the chat template closes an assistant turn with (``<|im_end|>`` for InternLM2 and
    Qwen, ``<|eot_id|>`` for Llama 3), read off the template itself; ``None`` when it is not one token."""
    return _turn_format(tok)[0]


def _turn_format(tok) -> tuple[str | None, bool]:
    """(end-of-turn token, whether the tokenizer adds BOS itself), worked out once per tokenizer."""
    cached = _TURN_FORMATS.get(tok)
    if cached is None:
        probe = render(tok, [{"role": "user", "content": "q"}, {"role": "assistant", "content": "PUYU_ANSWER"}])
        tail = probe.rsplit("PUYU_ANSWER", 1)[-1].strip()
        eot = tail if tail and len(tok.encode(tail, add_special_tokens=False)) == 1 else None
        adds_bos = bool(tok.bos_token) and tok("x")["input_ids"][:1] == [tok.bos_token_id]
        cached = _TURN_FORMATS[tok] = (eot, adds_bos)
    return cached


def turn_texts(tok, p: dict) -> dict:
    """A conversational pair as trl's *standard* (text) format: ``prompt`` rendered by the chat template
    up to the assistant's turn; ``chosen`` / ``rejected`` the answer through the end-of-turn token and
    no further. (The template writes a newline after ``<|im_end|>``; with the conversational format
    trl would train on it, a token generation never produces — it stops at ``<|im_end|>``. The SFT
    stage trains the same span: the answer and its closing token.)"""
    prompt = render(tok, p["prompt"], add_generation_prompt=True)
    eot, adds_bos = _turn_format(tok)
    if adds_bos and prompt.startswith(tok.bos_token):
        prompt = prompt[len(tok.bos_token):]  # the tokenizer adds BOS itself
    eot = eot or ""
    return {"prompt": prompt, "chosen": p["chosen"][0]["content"] + eot,
            "rejected": p["rejected"][0]["content"] + eot}


def trl_tokenizer(tok):
    """The tokenizer handed to trl: a copy whose ``eos_token`` is the end-of-turn token, so trl (ORPO
    appends EOS to each answer; DPO to text answers) does not add ``</s>`` after a turn that is already closed."""
    import copy

    eot = end_of_turn(tok)
    if not eot:
        import warnings

        from ..i18n import tr

        warnings.warn(tr(f"对话模板没有用单个词元结束一轮：trl 会在每个回答后面加上 {tok.eos_token}，并且训练它",
                         "the chat template does not close a turn with one token: trl will append "
                         f"{tok.eos_token} to each answer and train it"), stacklevel=2)
    if not eot or eot == tok.eos_token:
        return tok
    t = copy.deepcopy(tok)
    t.eos_token = eot
    return t


def encode_pair(tok, p: dict, max_length: int | None = None) -> tuple[list[int], list[int], list[int]]:
    """(prompt, chosen, rejected) token ids, as trl's DPOTrainer tokenizes :func:`turn_texts`: the
    prompt alone and prompt + answer, the answer starting where they diverge. With ``max_length``,
    prompt + answer is cut to it from the end, as trl's collator does (``truncation_mode="keep_start"``).
    trl's ORPOTrainer tokenizes the same texts (a test checks both)."""
    from trl.data_utils import common_prefix_length

    t = turn_texts(tok, p)

    def ids(text):
        return list(tok(text)["input_ids"])

    prompt = ids(t["prompt"])
    pc, pr = ids(t["prompt"] + t["chosen"]), ids(t["prompt"] + t["rejected"])
    k = min(common_prefix_length(prompt, pc), common_prefix_length(prompt, pr))
    c, r = pc[k:], pr[k:]
    if max_length is not None:
        room = max(0, max_length - k)
        c, r = c[:room], r[:room]
    return prompt[:k], c, r


def too_long(tok, pairs: list[dict], max_length: int) -> list[str]:
    """Custom pairs trl would not train as written: a prompt that fills ``max_length`` (trl drops the
    pair) or an answer cut short by it — one line each (a :class:`~puyu_lab.errors.Msg`, with its Chinese), naming
    the file's line and the token counts."""
    out = []
    for p in pairs:
        if p.get("source") != "custom":
            continue
        pr, c, r = encode_pair(tok, p)
        where, where_zh = f"line {p.get('line', '?')}", f"第 {p.get('line', '?')} 行"
        if len(pr) >= max_length:
            out.append(Msg(f"{where}: the prompt is {len(pr)} tokens, max_length is {max_length}: no answer token "
                           "would be trained; shorten the prompt or raise max_length",
                           f"{where_zh}：提示有 {len(pr)} 个词元，而 max_length 是 {max_length}：回答中没有一个词元"
                           "能参与训练；请缩短提示，或调大 max_length"))
        elif len(pr) + max(len(c), len(r)) > max_length:
            out.append(Msg(f"{where}: prompt + answer is {len(pr) + max(len(c), len(r))} tokens, max_length is "
                           f"{max_length}: the answer would be cut; shorten it or raise max_length",
                           f"{where_zh}：提示加回答共 {len(pr) + max(len(c), len(r))} 个词元，而 max_length 是 "
                           f"{max_length}：回答会被截断；请缩短它，或调大 max_length"))
    return out


def score_pairs(scorer, tok, pairs: list[dict], max_length: int | None = None) -> list[dict]:
    """Per pair: log p(chosen | prompt), log p(rejected | prompt) (sums over the completion's tokens,
    as DPO's log-probabilities are, cut to ``max_length`` as trl cuts them), their lengths, and whether
    chosen ranks above rejected."""
    reqs, lens = [], []
    for p in pairs:
        pr, c, r = encode_pair(tok, p, max_length)
        reqs += [(pr, c), (pr, r)]
        lens.append((len(c), len(r)))
    res = scorer.loglikelihood_tokens(reqs)
    out = []
    for i, (lc, lr) in enumerate(lens):
        c, r = res[2 * i][0], res[2 * i + 1][0]
        out.append({"logp_chosen": c, "logp_rejected": r, "margin": c - r, "chosen_tokens": lc,
                    "rejected_tokens": lr, "correct": c > r})
    return out


def accuracy_by_source(pairs: list[dict], scores: list[dict]) -> dict:
    """Held-out preference accuracy (chosen's log-probability above rejected's) and mean margin, per
    source and over all pairs."""
    out: dict = {}
    groups: dict[str, list] = {}
    for p, s in zip(pairs, scores):
        groups.setdefault(p["source"], []).append(s)
        groups.setdefault("all", []).append(s)
    for src, ss in groups.items():
        out[src] = {"n": len(ss), "accuracy": sum(s["correct"] for s in ss) / len(ss),
                    "margin": sum(s["margin"] for s in ss) / len(ss)}
    return out


def trl_rows(tok, pairs: list[dict]) -> list[dict]:
    """The pairs as the rows handed to trl's trainers (:func:`turn_texts` of each)."""
    return [turn_texts(tok, p) for p in pairs]
