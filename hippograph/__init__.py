"""hippograph: graph-based multi-hop retrieval (PPR over a spaCy knowledge graph + SPANN vectors), no LLM."""
__version__ = "0.1.0"

from .config import Config
from .errors import (
    ConfigError,
    HippoGraphError,
    IndexCorruptError,
    IndexLockedError,
    IndexNotFoundError,
    SourceError,
)
from .types import Document, Hit, Passage, Triple

__all__ = [
    "Config", "Document", "Hit", "Passage", "Triple", "HippoGraph",
    "HippoGraphError", "ConfigError", "SourceError", "IndexNotFoundError", "IndexCorruptError", "IndexLockedError",
]


def __getattr__(name: str):
    # Lazy: `import hippograph` stays cheap (no numpy/scipy/faiss until an index is used).
    if name == "HippoGraph":
        from .api import HippoGraph

        return HippoGraph
    raise AttributeError(f"module 'hippograph' has no attribute {name!r}")
