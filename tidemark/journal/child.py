"""Starting the journal's helper processes (the writer, a background verify).

Forking is fast (no re-import) and safe while the process has one thread;
otherwise, or where fork does not exist, children are spawned.
"""

from __future__ import annotations

import multiprocessing
import threading
from typing import Any


def child_context() -> Any:
    """The multiprocessing context to start a helper process with."""
    method = "fork" if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(method)
