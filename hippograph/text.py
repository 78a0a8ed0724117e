"""Text normalisation shared by extraction, linking and evaluation."""
from __future__ import annotations

import re

_NON_ALNUM = re.compile(r"[^a-z0-9 ]")
_SPACES = re.compile(r"\s+")
_LEADING_DETERMINERS = re.compile(r"^(the|a|an|this|that|these|those|its|his|her|their|our|my|your)\s+")


def normalize_entity(phrase: str) -> str:
    """HippoRAG normalisation (`[^A-Za-z0-9 ]`→space, lower-case) plus determiner strip and space collapse."""
    s = _NON_ALNUM.sub(" ", phrase.lower())
    s = _SPACES.sub(" ", s).strip()
    s = _LEADING_DETERMINERS.sub("", s)
    return s


def word_count(text: str) -> int:
    """Whitespace word count."""
    return len(text.split())
