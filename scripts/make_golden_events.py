"""Write one encoded fixture per event tag into tests/data/events/.

Golden fixtures are history: a test decodes them with the current code, so a
change that breaks old journals fails loudly. Only add files for new tags or
versions; never rewrite an existing one (a changed golden needs a commit that
explains it). Run: python scripts/make_golden_events.py
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from tests.core.event_samples import sample_event
from tidemark.core.codec import encode
from tidemark.core.events import EVENT_TYPES, TAGS

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "events"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for cls in EVENT_TYPES:
        path = OUT / f"{TAGS[cls]}.v{cls.version}.msgpack"
        if path.exists():
            continue
        event = sample_event(cls)
        path.write_bytes(encode(event))
        path.with_suffix(".json").write_bytes(msgspec.json.encode(msgspec.to_builtins(event)) + b"\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
