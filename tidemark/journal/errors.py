"""The journal's errors, named after what failed."""

from __future__ import annotations

from tidemark.core.codec import EventDecodeError


class JournalError(Exception):
    """Base of every journal error."""


class JournalLockedError(JournalError):
    """Another writer holds the journal."""


class JournalIntegrityError(JournalError):
    """The journal failed verification (hash chain, sequence, SQLite)."""


class SequenceError(JournalError):
    """An append out of order (seq is not last + 1)."""


class JournalConfigError(JournalError):
    """SQLite did not give the durability settings asked for."""


class JournalFormatError(JournalError):
    """The file is not a tidemark journal (or of an unknown format version)."""


class JournalDecodeError(JournalError, EventDecodeError):
    """A stored payload does not decode."""
