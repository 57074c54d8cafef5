"""A long generation says how far it is in the flow run's log, not only at the start and the end."""

from __future__ import annotations

import logging

import pytest

from scenario_pipeline.tasks import generate


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_progress_lines_give_count_share_rate_and_time_left() -> None:
    log = logging.getLogger("test-generate-progress")
    handler = _Lines()
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    readings = iter([100.0, 110.0, 115.0, 140.0, 150.0])  # started, then one reading per call
    report = generate._progress_log(log, "events.events", present=200, total=1000, clock=lambda: next(readings))
    report(400)  # t=110: 10 s since the start, under the 30 s interval: silent
    report(450)  # t=115: silent
    report(800)  # t=140: 40 s, 600 partitions since the start -> 15/s, 200 left -> 13 s
    report(1000)  # t=150: done; the end is logged by the caller
    assert handler.lines == ["Generating events.events: 800 of 1000 partitions (80%), 15.00 partitions/s, about 13s left."]


@pytest.mark.parametrize(
    "seconds,text", [(13.7, "13s"), (75, "1m15s"), (3 * 3600 + 5 * 60 + 9, "3h05m"), (float("inf"), "unknown time")]
)
def test_durations_read_like_a_person_wrote_them(seconds: float, text: str) -> None:
    assert generate._duration(seconds) == text
