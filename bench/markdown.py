"""Markdown pieces shared by every section of the report: a number formatted or "-", and a table."""

from __future__ import annotations

import math
from typing import Any


def fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def targets_table(targets: list[dict[str, Any]]) -> list[str]:
    """The targets' table: target, case, value, limit, verdict."""
    rows = [[t["target"], t["detail"], f"{fmt(t['value'], 2)} {t['unit']}", f"{fmt(t['limit'], 1)} {t['unit']}",
             "met" if t["met"] else "**MISSED**"] for t in targets]
    return table(["target", "case", "value", "limit", "verdict"], rows)
