"""The growth worker's cost per event tenth by tenth (bench.worker.Tenths), on a clock the test moves."""

from __future__ import annotations

import pytest

from bench import worker
from bench.worker import Tenths


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(worker.time, "perf_counter", fake)
    return fake


def test_each_tenth_is_its_own_time_over_its_own_events(clock: Clock):
    tenths = Tenths(1000)
    for done in range(100, 1001, 100):  # a unit of 100 lines a tenth, each slower than the one before
        clock.now += done / 1e6  # the tenth ending at `done` takes done µs
        tenths.reached(done, done * 2)  # two events a line
    assert tenths.us_per_event == pytest.approx([done / 200 for done in range(100, 1001, 100)])


def test_a_tenth_closes_at_the_first_unit_past_its_end_and_a_large_unit_closes_several(clock: Clock):
    tenths = Tenths(1000)
    clock.now += 0.001
    tenths.reached(50, 50)  # inside the first tenth: nothing closed
    assert tenths.us_per_event == []
    clock.now += 0.002
    tenths.reached(350, 350)  # past the first three tenths' ends: one figure for the 350 events since the start
    assert tenths.us_per_event == pytest.approx([3000 / 350])
    clock.now += 0.0065
    tenths.reached(1000, 1000)  # the rest at once
    assert tenths.us_per_event == pytest.approx([3000 / 350, 6500 / 650])
    clock.now += 1.0
    tenths.reached(1000, 1000)  # nothing after the last
    assert len(tenths.us_per_event) == 2


def test_the_time_since_the_last_tenth_is_what_followed_the_last_unit(clock: Clock):
    tenths = Tenths(10)
    clock.now += 0.5
    tenths.reached(10, 10)
    clock.now += 2.25  # a rebuild's copy and swap after its last page
    assert tenths.since_last() == pytest.approx(2.25)


def test_no_events_no_figure(clock: Clock):
    tenths = Tenths(100)
    clock.now += 1.0
    tenths.reached(100, 0)  # every line refused: no event to divide by
    assert tenths.us_per_event == []
