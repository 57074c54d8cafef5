"""The fault suite's summary table: each fault test adds a row; pytest prints the table at the
end of the session (tests/conftest.py, pytest_terminal_summary) and writes it to
test-output/reliability-table.md for docs/reliability.md."""

from __future__ import annotations

from dataclasses import dataclass

ROWS: list[FaultRow] = []


@dataclass
class FaultRow:
    fault: str
    behaviour: str
    expected: int
    recorded: int
    duplicated: int
    lost: int


def record(fault: str, behaviour: str, expected: int, recorded: int, duplicated: int) -> None:
    ROWS.append(FaultRow(fault, behaviour, expected, recorded, duplicated, max(0, expected - (recorded - duplicated))))


def markdown() -> str:
    lines = [
        "| fault or input | what the system did | cases expected | recorded | duplicated | lost |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {r.fault} | {r.behaviour} | {r.expected} | {r.recorded} | {r.duplicated} | {r.lost} |" for r in ROWS]
    return "\n".join(lines)
