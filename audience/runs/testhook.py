"""A test-only pause point, so crash tests can `kill -9` a real refresh at a known step.

With `AUDIENCE_TEST_PAUSE_AT=<point>` in the environment, the process stops at that point: it
writes its pid to the file named by `AUDIENCE_TEST_PAUSE_FILE` (if set), then sleeps for
`AUDIENCE_TEST_PAUSE_SECONDS` (default 600). Without the variable this is a no-op costing one
dictionary lookup. Points, in the order a run reaches them:

- `plan`: the plan is built and checkpointed, nothing was sent;
- every checkpoint a sink records, by its step name (`batch:1`, `part:adds:0`, ...), right
  after the batch was acknowledged or the file written;
- `commit`: every batch or file is sent, the gRPC commit / the manifest is not;
- `exported`: the export is complete and checkpointed, the snapshot is not updated;
- `snapshot`: the snapshot is updated and checkpointed, the run is not marked finished.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

PAUSE_AT = "AUDIENCE_TEST_PAUSE_AT"
PAUSE_FILE = "AUDIENCE_TEST_PAUSE_FILE"
PAUSE_SECONDS = "AUDIENCE_TEST_PAUSE_SECONDS"


def pause_point(name: str) -> None:
    """Stop here when the environment asks for this point (tests only)."""
    if os.environ.get(PAUSE_AT) != name:
        return
    marker = os.environ.get(PAUSE_FILE)
    if marker:
        Path(marker).write_text(f"{os.getpid()}\n", encoding="utf-8")
    time.sleep(float(os.environ.get(PAUSE_SECONDS, "600")))
