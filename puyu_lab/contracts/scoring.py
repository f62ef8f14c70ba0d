"""The one rule for whether a generated reply answers a task: the eval stage's generation tasks and the deploy
stage's quantization tasks both score with it, so a level's "task accuracy" and a leaderboard's score mean the
same thing."""
from __future__ import annotations

import math
import re

from .protocol import called_tool

MATCHES = ("exact", "contains", "prefix", "regex", "tool")
NUMBER = r"(-?\d+(?:\.\d+)?)"  # the regex's default: the first number in the reply


def answer_matches(match: str, output: str, answer: str, regex: str | None = None) -> bool:
    """Whether ``output`` answers ``answer`` under ``match``: ``exact``; ``contains``; ``prefix`` (starts with it);
    ``regex`` (the pattern's first group, or the whole match, equals the answer; default: the first number);
    ``tool`` (the tool the reply calls, ``none`` when it answers directly). Both sides are stripped."""
    out, answer = output.strip(), answer.strip()
    if match == "exact":
        return out == answer
    if match == "contains":
        return answer in out
    if match == "prefix":
        return out.startswith(answer)
    if match == "tool":
        return called_tool(out) == answer
    if match != "regex":
        raise ValueError(f"match={match!r}: use one of {', '.join(MATCHES)}")
    m = re.search(regex or NUMBER, out)
    if not m:
        return False
    got = m.group(1) if m.groups() else m.group(0)
    # an optional group that did not take part in the match: no answer, so wrong
    return got is not None and got.strip() == answer


def mean_stderr(values: list[float]) -> float | None:
    """The standard error of a mean, as lm-eval reports it (``acc_stderr``: the sample standard deviation over
    √n, lm_eval.api.metrics.mean_stderr — lm-eval is the tests' peer, not a dependency, so the three lines are
    here and a test holds them to lm-eval's figure. The eval stage's scores and the deploy stage's task accuracy use it); None for fewer than 2 values."""
    n = len(values)
    if n < 2:
        return None
    mu = sum(values) / n
    return math.sqrt(sum((x - mu) ** 2 for x in values) / (n - 1)) / math.sqrt(n)
