"""PII scrubbing: e-mails, IP addresses, mainland China mobile numbers and resident ID numbers
are replaced by tags such as ``<EMAIL>``. Counted per document as signals; replaced on export."""
from __future__ import annotations

import re

EMAIL_RE = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4_RE = re.compile(rf"(?<![0-9.]){_OCTET}(?:\.{_OCTET}){{3}}(?![0-9]|\.[0-9])")
IPV6_RE = re.compile(r"(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}(?![0-9A-Fa-f:])")
# mainland mobile: 1[3-9] + 9 digits, optionally +86 / 86 / 0086 and separators
PHONE_RE = re.compile(r"(?<![0-9])(?:(?:\+|00)?86[- ]?)?1[3-9][0-9](?:[- ]?[0-9]{4}){2}(?![0-9])")
# resident ID (GB 11643-1999): region(6) + birth date(8) + sequence(3) + check (0-9 or X)
ID_RE = re.compile(r"(?<![0-9])[1-9][0-9]{5}(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9Xx](?![0-9A-Za-z])")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"

TAGS = {"email": "<EMAIL>", "ip": "<IP_ADDRESS>", "phone": "<PHONE>", "id_number": "<ID_NUMBER>"}
KINDS = tuple(TAGS)


def id_checksum_ok(s: str) -> bool:
    total = sum(int(c) * w for c, w in zip(s[:17], _ID_WEIGHTS))
    return _ID_CHECK[total % 11] == s[17].upper()


def _ids(text: str) -> list[re.Match]:
    return [m for m in ID_RE.finditer(text) if id_checksum_ok(m.group())]


def count(text: str) -> dict[str, int]:
    """How many of each kind a text holds (the ``pii_*`` signals): exactly what :func:`scrub` replaces."""
    if "@" not in text and not _ANY_DIGIT.search(text):
        return {f"pii_{k}": 0 for k in KINDS}
    return {f"pii_{k}": v for k, v in scrub(text)[1].items()}


_ANY_DIGIT = re.compile(r"[0-9]")


def scrub(text: str) -> tuple[str, dict[str, int]]:
    """Replace PII with its tags; returns the new text and the counts replaced."""
    counts = dict.fromkeys(KINDS, 0)

    def sub(kind: str, pattern: re.Pattern, t: str, check=None) -> str:
        def repl(m: re.Match) -> str:
            if check is not None and not check(m.group()):
                return m.group()
            counts[kind] += 1
            return TAGS[kind]
        return pattern.sub(repl, t)

    text = sub("email", EMAIL_RE, text)
    text = sub("id_number", ID_RE, text, id_checksum_ok)
    text = sub("phone", PHONE_RE, text)
    text = sub("ip", IPV6_RE, text)
    text = sub("ip", IPV4_RE, text)
    return text, counts
