"""Exception types: every error a user can trigger names the file and the problem."""
from __future__ import annotations


class HippoGraphError(Exception):
    """Base class of all hippograph errors."""


class ConfigError(HippoGraphError, ValueError):
    """A config file or option is invalid; `option` names the option when there is one."""

    def __init__(self, message: str, *, option: str | None = None):
        super().__init__(message)
        self.option = option


class SourceError(HippoGraphError):
    """A source path is missing or unreadable (skippable per-file problems only warn)."""


class IndexNotFoundError(HippoGraphError):
    """The index directory does not exist or holds no hippograph index."""


class IndexCorruptError(HippoGraphError):
    """The index directory is damaged, foreign, incomplete, or of a newer format."""


class IndexLockedError(HippoGraphError):
    """Another process is writing to this index."""


class IndexWriteError(HippoGraphError):
    """A write could not finish (disk full, file-size limit, I/O error); the index is unchanged."""
