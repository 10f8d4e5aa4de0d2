"""`bench.stores.settled`: a timed run starts charged for nothing that ran before it."""

from __future__ import annotations

import gc
import weakref
from types import SimpleNamespace

from bench.stores import settled


class _Node:
    other: _Node | None = None


def test_a_settled_start_has_collected_the_garbage_left_before_it() -> None:
    collected: list[str] = []
    was_enabled = gc.isenabled()
    gc.disable()  # only settled may collect here
    try:
        first, second = _Node(), _Node()
        first.other, second.other = second, first  # a cycle: only the cyclic collector frees it
        weakref.finalize(first, collected.append, "freed")
        del first, second
        assert collected == []
        settled(SimpleNamespace(database=SimpleNamespace(kind="postgres", memory=False)))  # type: ignore[arg-type]
        assert collected == ["freed"]
    finally:
        if was_enabled:
            gc.enable()
