"""The alert workflow's rules, apart from SQL: statuses, allowed transitions, checks of ids and names.

An alert's status is derived from its history (``alert_events``, one row per action a person took):
no action yet is ``open``; ``acknowledged`` (someone is on it); ``resolved`` (fixed; final). Only an
open alert can be acknowledged; an open or acknowledged one can be resolved; a resolved alert
stays resolved: when its condition comes back, the next run opens a new alert
(warehouse/sql_warehouse.py, ``_link_recurrences``).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from scenario_pipeline.errors import UsageError

STATUSES = ("open", "acknowledged", "resolved")
SEVERITY_ORDER = ("critical", "warning", "info")
ACTIONS = {"ack": "acknowledged", "resolve": "resolved"}
MIN_PREFIX = 4
_ID = re.compile(rf"^[0-9a-f]{{{MIN_PREFIX},64}}$")


def when(at: Any) -> str:
    """A timestamp as messages show it: minutes, UTC."""
    return f"{at:%Y-%m-%d %H:%M} UTC" if isinstance(at, datetime) else str(at)


def state(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Status, who and when, from an alert's events (oldest first)."""
    out: dict[str, Any] = {
        "status": "open",
        "acknowledged_by": None,
        "acknowledged_at": None,
        "acknowledge_comment": None,
        "resolved_by": None,
        "resolved_at": None,
        "resolve_comment": None,
    }
    for e in events:
        prefix = {"acknowledged": "acknowledge", "resolved": "resolve"}.get(e["action"])
        if prefix is None:
            continue
        out["status"] = e["action"]
        out[f"{e['action']}_by"], out[f"{e['action']}_at"] = e["acted_by"], e["acted_at"]
        out[f"{prefix}_comment"] = e["comment"]
    return out


def check_transition(short_id: str, current: dict[str, Any], action: str) -> None:
    """Refuse a transition the workflow does not allow, saying what to do instead."""
    status = current["status"]
    if status == "resolved":
        raise UsageError(
            f"alert {short_id} is already resolved (by {current['resolved_by']} at {when(current['resolved_at'])}); "
            "nothing more to do: if its condition comes back, the next run opens a new alert"
        )
    if action == "ack" and status == "acknowledged":
        raise UsageError(
            f"alert {short_id} is already acknowledged (by {current['acknowledged_by']} at "
            f"{when(current['acknowledged_at'])}); resolve it with `scenario alerts resolve {short_id} --by NAME`"
        )


def check_id(value: object) -> str:
    """An alert id or a prefix of one, as `scenario alerts` shows them (lower-cased)."""
    text = value.strip().lower() if isinstance(value, str) else ""
    if not _ID.match(text):
        raise UsageError(
            f"alert id {value!r} must be {MIN_PREFIX} to 64 hex digits (an id or the start of one, as `scenario alerts` lists them)"
        )
    return text


def check_actor(name: object) -> str:
    if not isinstance(name, str) or not 0 < len(name.strip()) <= 256 or not name.isprintable():
        raise UsageError(f"--by must be a name of 1 to 256 printable characters, got {name!r}")
    return name.strip()


def check_comment(comment: object) -> str | None:
    if comment is None:
        return None
    if not isinstance(comment, str) or len(comment) > 4096 or not all(ch.isprintable() or ch in "\n\t" for ch in comment):
        raise UsageError("--comment must be text of at most 4,096 characters without control characters")
    return comment.strip() or None


def check_filters(severity: str | None, status: str | None) -> None:
    if severity is not None and severity not in SEVERITY_ORDER:
        raise UsageError(f"severity {severity!r} is not known; use one of {', '.join(reversed(SEVERITY_ORDER))}")
    if status is not None and status not in STATUSES:
        raise UsageError(f"status {status!r} is not known; use one of {', '.join(STATUSES)}")


def sort_key(alert: dict[str, Any]) -> tuple:
    """Open first, then acknowledged, then resolved; the worst severity first; the newest first."""
    created = alert["created_at"]
    stamp = -created.timestamp() if isinstance(created, datetime) else 0.0
    sev = SEVERITY_ORDER.index(alert["severity"]) if alert["severity"] in SEVERITY_ORDER else len(SEVERITY_ORDER)
    return (STATUSES.index(alert["status"]), sev, stamp, alert["alert_id"])
