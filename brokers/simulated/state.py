"""The simulated broker's own state file, so that it can play "the broker that kept running"
across a gateway crash: what it acknowledged is on disk before the acknowledgement returns.

A JSON document replaced atomically (write a temporary file, fsync, rename). Only used when a
state path is given; the embedded default keeps its market in memory.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def load_state(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or data.get("version") != 1:
        raise ValueError(f"{path}: not a simulated-broker state file of version 1")
    return data


def save_state(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as handle:
        json.dump({"version": 1, **state}, handle, separators=(",", ":"))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
