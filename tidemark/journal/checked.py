"""Reading a journal only if it verifies.

Every command that reads a journal (report, show, export, diff, a rerun,
``Result.from_journal``) reads it through :func:`read_checked`: verify runs in
a child process while this one reads (on two cores the pair takes about as
long as the read alone), and when the read is done the verdict decides. A
damaged journal is refused with :class:`JournalIntegrityError` naming the
first bad seq, and whatever was read from it is dropped; an error the read
met on a damaged journal becomes that refusal. ``trust=True`` skips verify
(the caller then says so in its output).

A journal being written (its writer holds the lock) is read as far as it is
committed and verified; the report says ``being written``. One whose
writer has not committed anything yet is :class:`JournalBeingWritten`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tidemark.core.text import plural
from tidemark.journal.errors import JournalBeingWritten, JournalIntegrityError
from tidemark.journal.lock import being_written
from tidemark.journal.verify import BEING_WRITTEN, BackgroundVerify, Expectations, VerifyReport, verify


@dataclass
class ReadCheck:
    """The verdict on a journal read under :func:`read_checked`: ``report``
    is verify's (None when trusted, or until the read is done)."""

    path: Path
    trusted: bool
    report: VerifyReport | None = field(default=None)

    @property
    def being_written(self) -> bool:
        return self.report is not None and self.report.status == BEING_WRITTEN

    def describe(self) -> str:
        """One line for a command's output: what verify proved of what was read."""
        if self.trusted:
            return "UNVERIFIED: read with --trust, not checked against its hash chain"
        assert self.report is not None
        text = f"verified: {plural(self.report.events, 'record')}, head {self.report.head}"
        if self.being_written:
            text += " (being written: verified as far as it was committed)"
        elif not self.report.sealed:
            text += f" (unsealed: status {self.report.status}; its writer stopped without sealing it)"
        return text

    def as_dict(self) -> dict[str, object]:
        if self.trusted:
            return {"verified": False, "trusted": True}
        assert self.report is not None
        return {
            "verified": True,
            "trusted": False,
            "events": self.report.events,
            "head": self.report.head,
            "status": self.report.status,
        }


def refusal(path: Path, report: VerifyReport) -> JournalIntegrityError:
    return JournalIntegrityError(
        f"{path}: DAMAGED: {report.message}; refusing to read it (--trust reads it anyway)", report.first_bad_seq
    )


@contextmanager
def read_checked(
    path: str | os.PathLike[str], *, trust: bool = False, expect: Expectations | None = None
) -> Iterator[ReadCheck]:
    """Verify ``path`` while the body reads it; see the module docstring."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such journal")
    check = ReadCheck(path, trust)
    if trust:
        yield check
        return
    pending = BackgroundVerify(path, expect=expect)
    try:
        try:
            yield check
        except Exception as error:  # what reading a damaged journal can raise: verify decides
            report = pending.result()
            if not report.ok:
                raise refusal(path, report) from error
            if report.status == BEING_WRITTEN and report.events == 0:
                raise JournalBeingWritten(f"{path}: being written: nothing committed yet") from error
            raise
        report = pending.result()
    finally:
        pending.close()  # an interrupt: stop the child
    if not report.ok:
        raise refusal(path, report)
    check.report = report


def verified(path: str | os.PathLike[str], *, expect: Expectations | None = None) -> VerifyReport:
    """Verify in this process (for a command that reads little else);
    raises the refusal of :func:`read_checked` on damage."""
    path = Path(path)
    report = verify(path, expect=expect)
    if not report.ok:
        raise refusal(path, report)
    if being_written(path) and report.events == 0:
        raise JournalBeingWritten(f"{path}: being written: nothing committed yet")
    return report
