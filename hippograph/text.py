"""Text normalisation shared by extraction, linking and evaluation."""
from __future__ import annotations

import re
import unicodedata

_NON_ALNUM = re.compile(r"[^\w ]|_")
_SPACES = re.compile(r"\s+")
_LEADING_DETERMINERS = re.compile(r"^(the|a|an|this|that|these|those|its|his|her|their|our|my|your)\s+")
TITLE_QUALIFIER = re.compile(r"\s*\([^()]*\)\s*$")
"""A trailing parenthesised disambiguation in a title: "Kassel (city)"."""


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


def title_without_qualifier(title: str | None) -> str:
    """Title without a trailing disambiguation: "Turtle River (North Dakota)" → "Turtle River"."""
    return TITLE_QUALIFIER.sub("", title or "").strip() or (title or "")


def title_entity_names(title: str | None) -> list[str]:
    """The entity names a passage title links to (`Config.link_title`): the normalised title and
    the normalised title without its disambiguation, when they differ."""
    if not title:
        return []
    names = [normalize_entity(title), normalize_entity(title_without_qualifier(title))]
    return [n for i, n in enumerate(names) if n and n not in names[:i]]


def word_count(text: str) -> int:
    """Whitespace word count."""
    return len(text.split())


def passage_embedding_text(title: str, text: str) -> str:
    """What a passage is embedded (and BM25-indexed) as: its title then its text (HippoRAG embeds 'title\\ntext')."""
    if title and not text.startswith(title):
        return f"{title}\n{text}"
    return text


_MONTHS = frozenset("january february march april may june july august september october november december "
                    "jan feb mar apr jun jul aug sep sept oct nov dec".split())
_ERAS = frozenset("bc bce ad ce".split())
_NUMBER_WORDS = frozenset(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand million "
    "billion first second third fourth fifth sixth seventh eighth ninth tenth".split())
_NUMERAL = re.compile(r"\d+(st|nd|rd|th|s)?")


def is_bare_date_or_number(name: str) -> bool:
    """Is a normalised entity name only a date or a number ("1873", "12 march 1873", "1870s",
    "24 000", "three")? Such names link unrelated passages, so they make poor second-hop bridges."""
    tokens = name.split()
    if not tokens:
        return False
    numeral = False
    for t in tokens:
        if _NUMERAL.fullmatch(t) or t in _NUMBER_WORDS:
            numeral = True
        elif t not in _MONTHS and t not in _ERAS:
            return False
    return numeral
