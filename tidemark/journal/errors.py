"""The journal's errors, named after what failed.

Every error about a journal's *contents* (damage, bytes that do not decode)
names the first seq it concerns when there is one (``seq``), so a caller can
report "damaged at seq N" without parsing the message.
"""

from __future__ import annotations

from tidemark.core.codec import EventDecodeError


class JournalError(Exception):
    """Base of every journal error."""


class JournalLockedError(JournalError):
    """Another writer holds the journal."""


class JournalIntegrityError(JournalError):
    """The journal failed verification (hash chain, sequence, SQLite).
    ``seq``: the first bad record (None: not a record, e.g. the meta table)."""

    def __init__(self, message: str, seq: int | None = None) -> None:
        super().__init__(message)
        self.seq = seq


class SequenceError(JournalError):
    """An append out of order (seq is not last + 1)."""


class JournalConfigError(JournalError):
    """SQLite did not give the durability settings asked for."""


class JournalFormatError(JournalError):
    """The file is not a tidemark journal (or of an unknown format version)."""


class JournalBeingWritten(JournalError):
    """A writer holds the journal and has not committed what was asked for
    yet (a journal being created has no tables yet: it is not damaged)."""


class JournalEmptyError(JournalError):
    """A journal with no records (its run wrote nothing): there is nothing
    to replay or report."""


class JournalWriteError(JournalError):
    """The writer could not store what it was given (disk full, I/O error,
    its process died); the message names the cause in one line. What was
    committed before stays in the journal."""


class JournalDecodeError(JournalError, EventDecodeError):
    """Stored bytes do not decode. ``seq``: the record, or the first record
    of the block, they belong to (None when not known)."""

    def __init__(self, message: str, seq: int | None = None) -> None:
        super().__init__(message)
        self.seq = seq
