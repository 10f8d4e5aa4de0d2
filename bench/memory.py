"""Resident memory of this process (Linux /proc), with the peak resettable between stages."""

from __future__ import annotations

import re
from pathlib import Path

STATUS = Path("/proc/self/status")


def _field(name: str) -> float | None:
    try:
        text = STATUS.read_text()
    except OSError:
        return None
    found = re.search(rf"^{name}:\s+(\d+) kB", text, re.MULTILINE)
    return int(found.group(1)) / 1024 if found else None


def rss_mb() -> float | None:
    return _field("VmRSS")


def peak_mb() -> float | None:
    return _field("VmHWM")


def reset_peak() -> bool:
    """Start a new peak from the current resident size (Linux >= 4.0: write 5 to clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True
