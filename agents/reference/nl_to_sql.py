"""A small rule-based semantic parser: English question + schema + column values -> one SQL query.

It links the question to the schema in three steps, the way classic NL-to-SQL systems do:

1. Values: every string value of a dimension column that occurs in the question (longest
   first, whole words) becomes a filter on that column; month names become a time range.
2. Measure: phrases map to an aggregate over the fact table ("units" -> SUM(quantity),
   "revenue"/"amount" -> SUM(amount), "average" -> AVG(amount), "different customers" ->
   COUNT(DISTINCT customer_id), "how many sales" -> COUNT(*)).
3. Shape: "per channel" / "each month" group; "which city" / "the K ... products" rank and
   limit; "list price" lists a dimension's rows.

The fact table is the one holding ``amount``; a dimension joins it on its first column, which the
fact table also holds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)


@dataclass
class Parse:
    filters: list[tuple[str, str]] = field(default_factory=list)  # (column, value)
    month: int | None = None
    year: int | None = None
    numbers: list[int] = field(default_factory=list)


def _quote(v: str) -> str:
    return "'" + v.replace("'", "''") + "'"


class SqlWriter:
    def __init__(self, schema: dict[str, list[list[str]]], values: dict[str, set[str]]) -> None:
        self.schema = {t: [c for c, _ in cols] for t, cols in schema.items()}
        self.owner: dict[str, str] = {}
        for t, cols in self.schema.items():
            for c in cols:
                self.owner.setdefault(c, t)
        self.fact = self.owner["amount"]
        # One alternation, longest values first: at each position the longest value wins.
        self.column_of = {v.lower(): col for col, vs in values.items() for v in vs if not v.isdigit()}
        ordered = sorted(self.column_of, key=lambda v: (-len(v), v))
        self.value_re = (
            re.compile("(?<!\\w)(" + "|".join(re.escape(v) for v in ordered) + ")(?!\\w)", re.IGNORECASE) if ordered else None
        )
        self.original = {v.lower(): v for vs in values.values() for v in vs}
        self.alias = {self.fact: "s"}
        for t in self.schema:
            if t != self.fact:
                self.alias[t] = t[:2]

    def col(self, column: str) -> str:
        table = self.owner[column]
        return f"{self.alias[table]}.{column}"

    def parse(self, question: str) -> Parse:
        p = Parse()
        text = question
        if self.value_re is not None:
            for m in self.value_re.finditer(question):  # a matched value masks its words
                key = m.group(1).lower()
                p.filters.append((self.column_of[key], self.original[key]))
                text = text[: m.start()] + " " * (m.end() - m.start()) + text[m.end() :]
        low = text.lower()
        for i, name in enumerate(MONTHS):
            if re.search(rf"\b{name}\b", low):
                p.month = i + 1
        years = re.findall(r"\b(20\d\d)\b", low)
        p.year = int(years[0]) if years else None
        p.numbers = [int(n) for n in re.findall(r"(?<![\w.])(\d+)(?![\w.])", re.sub(r"\b20\d\d\b", " ", low))]
        return p

    def _joins(self, columns: list[str]) -> str:
        out = f"{self.fact} s"
        for table in dict.fromkeys(self.owner[c] for c in columns if self.owner[c] != self.fact):
            key = next(c for c in self.schema[table] if c in self.schema[self.fact])
            out += f" JOIN {table} {self.alias[table]} ON s.{key} = {self.alias[table]}.{key}"
        return out

    def _time(self, p: Parse) -> list[str]:
        ts = self.col("ts")
        if p.month:
            y = p.year or 2026
            ny, nm = (y + 1, 1) if p.month == 12 else (y, p.month + 1)
            return [
                f"{ts} >= TIMESTAMPTZ '{y}-{p.month:02d}-01 00:00:00+00'",
                f"{ts} < TIMESTAMPTZ '{ny}-{nm:02d}-01 00:00:00+00'",
            ]
        if p.year:
            return [f"{ts} >= TIMESTAMPTZ '{p.year}-01-01 00:00:00+00'", f"{ts} < TIMESTAMPTZ '{p.year + 1}-01-01 00:00:00+00'"]
        return []

    def _measure(self, q: str) -> str:
        if "units" in q:
            return f"SUM({self.col('quantity')})"
        if "average" in q or "mean" in q:
            return f"AVG({self.col('amount')})"
        if "different customers" in q or "distinct customers" in q:
            return f"COUNT(DISTINCT {self.col('customer_id')})"
        if re.search(r"how many (sales|purchases|orders)|count the (sales|purchases|orders)", q):
            return "COUNT(*)"
        return f"SUM({self.col('amount')})"  # revenue, sales amount, how much ... sell

    def write(self, question: str) -> str:
        q = question.lower()
        p = self.parse(question)
        where = [f"{self.col(c)} = {_quote(v)}" for c, v in p.filters]
        if "list price" in q:  # a listing of one dimension's rows
            price = [n for n in p.numbers]
            table = self.owner["list_price"]
            conds = [f"{c} = {_quote(v)}" for c, v in p.filters] + ([f"list_price > {price[-1]}"] if price else [])
            return f"SELECT product_name FROM {table}" + (f" WHERE {' AND '.join(conds)}" if conds else "")
        measure = self._measure(q)
        where += self._time(p)
        used = [c for c, _ in p.filters] + (["ts"] if p.month or p.year else [])
        if "month" in q and ("each month" in q or "month by month" in q):
            frm = self._joins(used + ["ts"])
            return (
                f"SELECT month({self.col('ts')}) AS month, {measure} AS value FROM {frm}"
                + _where(where)
                + " GROUP BY month ORDER BY month"
            )
        if "channel" in q:
            frm = self._joins(used + ["channel"])
            return f"SELECT {self.col('channel')}, {measure} FROM {frm}" + _where(where) + f" GROUP BY {self.col('channel')}"
        if "city" in q:
            frm = self._joins(used + ["city"])
            return (
                f"SELECT {self.col('city')} FROM {frm}" + _where(where) + f" GROUP BY {self.col('city')} "
                f"ORDER BY {measure} DESC, {self.col('city')} LIMIT 1"
            )
        if "products" in q and ("most" in q or "top" in q):
            k = p.numbers[0] if p.numbers else 10
            frm = self._joins(used + ["product_name"])
            pid = f"{self.alias[self.owner['product_name']]}.product_id"
            return (
                f"SELECT {self.col('product_name')}, {measure} AS units FROM {frm}"
                + _where(where)
                + f" GROUP BY {pid}, {self.col('product_name')} ORDER BY units DESC, {pid} LIMIT {k}"
            )
        return f"SELECT {measure} FROM {self._joins(used)}" + _where(where)


def _where(conds: list[str]) -> str:
    return f" WHERE {' AND '.join(conds)}" if conds else ""
