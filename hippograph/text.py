"""Text normalisation shared by extraction, linking and evaluation."""
from __future__ import annotations

import re
import unicodedata

_NON_ALNUM = re.compile(r"[^\w ]|_")
_SPACES = re.compile(r"\s+")
_LEADING_DETERMINERS = re.compile(r"^(the|a|an|this|that|these|those|its|his|her|their|our|my|your)\s+")


def fold_accents(text: str) -> str:
    """'Aschenbrödel' → 'Aschenbrodel': NFKD decomposition without combining marks."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def normalize_entity(phrase: str) -> str:
    """HippoRAG-style normalisation: lower-case, accents folded, non-alphanumerics → space,
    determiners stripped, spaces collapsed. Unlike HippoRAG's `[^A-Za-z0-9 ]` it keeps
    non-Latin letters, so 'Tekezé' → 'tekeze' (not 'tekez') and Cyrillic names survive."""
    s = _NON_ALNUM.sub(" ", fold_accents(phrase).lower())
    s = _SPACES.sub(" ", s).strip()
    s = _LEADING_DETERMINERS.sub("", s)
    return s


def word_count(text: str) -> int:
    """Whitespace word count."""
    return len(text.split())
