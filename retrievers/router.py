"""Multi-granularity entropy router (MemGAS 2025, DESIGN §3.6).

Each granularity (passage, sentence, fact, entity, …) returns its top-M candidate scores
for a query.  A peaked score distribution means that granularity is confident about a
few units; a flat one means it cannot tell its candidates apart.  With
p = softmax(s / τ) and H = −Σ p ln p, the router gives each granularity a weight

* ``scheme="exp"``:  w ∝ exp(−H)
* ``scheme="norm"``: w ∝ 1 − H / ln M   (entropy normalised to [0, 1] by its maximum)

MemGAS's released code uses w ∝ 1 − H, which goes negative (and inverts the ranking)
as soon as H > 1, i.e. for any M ≥ 3 near-flat distribution; we do not copy it.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["entropy", "route", "RouterResult", "SCHEMES"]

SCHEMES = ("exp", "norm")


def _scores_1d(scores: np.ndarray, name: str = "scores") -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64).ravel()
    if not np.all(np.isfinite(s)):
        raise ValueError(f"{name} contain NaN or infinite values")
    return s


def _check_temperature(temperature: float) -> float:
    t = float(temperature)
    if not (t > 0 and math.isfinite(t)):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature}")
    return t


def entropy(scores: np.ndarray, temperature: float) -> float:
    """Shannon entropy (nats) of softmax(scores / temperature); 0 for M ≤ 1 scores.

    Lies in [0, ln M].  Computed stably (max subtracted before exponentiating).
    """
    t = _check_temperature(temperature)
    s = _scores_1d(scores)
    if s.size <= 1:
        return 0.0
    z = s / t
    z -= z.max()
    e = np.exp(z)
    total = e.sum()
    logp = z - math.log(total)
    p = e / total
    h = float(-(p * logp).sum())
    # Clamp rounding noise into the mathematically valid range.
    return min(max(h, 0.0), math.log(s.size))


@dataclass
class RouterResult:
    """Per-granularity routing weights and the entropies that produced them (for explanations)."""

    weights: dict[str, float]
    """Weight per granularity, ≥ 0, summing to 1 (all 0 only if every granularity is empty)."""
    entropies: dict[str, float] = field(default_factory=dict)
    """H_g in nats, for granularities with at least one score (empty ones are left out)."""
    normalized_entropies: dict[str, float] = field(default_factory=dict)
    """H_g / ln M_g in [0, 1] (0 when M_g = 1), same keys as `entropies`."""
    temperature: float = 0.1
    scheme: str = "exp"
    """'exp', 'norm', or 'fixed' when fixed weights were used."""


def route(
    scores_by_granularity: Mapping[str, np.ndarray],
    *,
    temperature: float = 0.1,
    scheme: str = "exp",
    fixed_weights: Mapping[str, float] | None = None,
) -> RouterResult:
    """Weight each granularity by how peaked its top-M score distribution is.

    Granularities with no scores get weight 0.  With `fixed_weights` the entropies are
    still computed (for the explanation) but the weights are the given ones, normalised
    over the non-empty granularities; a granularity missing from `fixed_weights` gets 0
    (fixing weights means the caller chose the mix), keys not in the scores are ignored.
    If every candidate weight is 0 (all distributions flat under "norm", or all fixed
    weights 0) the non-empty granularities share the weight equally.
    """
    if not scores_by_granularity:
        raise ValueError("route() needs at least one granularity")
    if scheme not in SCHEMES:
        raise ValueError(f"unknown router scheme {scheme!r}; expected one of {SCHEMES}")
    t = _check_temperature(temperature)

    entropies: dict[str, float] = {}
    normalized: dict[str, float] = {}
    for g, scores in scores_by_granularity.items():
        s = _scores_1d(scores, f"scores of granularity {g!r}")
        if s.size == 0:
            continue
        h = entropy(s, t)
        entropies[g] = h
        normalized[g] = h / math.log(s.size) if s.size > 1 else 0.0

    raw: dict[str, float] = {g: 0.0 for g in scores_by_granularity}
    used_scheme = scheme
    if fixed_weights is not None:
        used_scheme = "fixed"
        for g, w in fixed_weights.items():
            w = float(w)
            if not (w >= 0 and math.isfinite(w)):
                raise ValueError(f"fixed weight for {g!r} must be a finite number ≥ 0, got {w}")
            if g in entropies:
                raw[g] = w
    elif scheme == "exp":
        for g, h in entropies.items():
            raw[g] = math.exp(-h)
    else:  # "norm"
        for g, hn in normalized.items():
            raw[g] = max(0.0, 1.0 - hn)

    total = sum(raw.values())
    if total <= 0 and entropies:
        logger.debug("router: all %s weights are 0; falling back to equal weights", used_scheme)
        raw = {g: (1.0 if g in entropies else 0.0) for g in scores_by_granularity}
        total = float(len(entropies))
    if total > 0:
        weights = {g: w / total for g, w in raw.items()}
    else:
        logger.debug("router: every granularity is empty; all weights 0")
        weights = raw
    return RouterResult(
        weights=weights,
        entropies=entropies,
        normalized_entropies=normalized,
        temperature=t,
        scheme=used_scheme,
    )
