"""S14 question templates: English wordings (paraphrases) and the gold SQL of each.

A template draws its slots (a region, a month, a brand, ...) from the values the schema's
columns can hold, so every question is answerable on the generated data. ``ordered`` marks
questions that ask for an order: their result rows are compared as lists, the rest as sets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


@dataclass(frozen=True)
class Question:
    template: str
    text: str
    sql: str
    ordered: bool


Slots = dict[str, Any]


def _q(v: str) -> str:
    return "'" + v.replace("'", "''") + "'"


def _month_range(m: int) -> tuple[str, str]:
    nxt = "2027-01-01" if m == 12 else f"2026-{m + 1:02d}-01"
    return f"TIMESTAMPTZ '2026-{m:02d}-01 00:00:00+00'", f"TIMESTAMPTZ '{nxt} 00:00:00+00'"


def region_revenue(s: Slots) -> tuple[tuple[str, ...], str, bool]:
    return (
        (
            f"What is the total revenue of stores in the {s['region']} region?",
            f"How much revenue did the stores of region {s['region']} bring in?",
            f"Sum up the sales amount for stores located in region {s['region']}.",
        ),
        f"SELECT SUM(s.amount) FROM sales s JOIN stores st ON s.store_id = st.store_id WHERE st.region = {_q(s['region'])}",
        False,
    )


def segment_month_count(s: Slots) -> tuple[tuple[str, ...], str, bool]:
    lo, hi = _month_range(s["month"])
    name = MONTHS[s["month"] - 1]
    return (
        (
            f"How many sales did {s['segment']} customers make in {name} 2026?",
            f"Count the purchases by customers in the {s['segment']} segment during {name} 2026.",
        ),
        f"SELECT COUNT(*) FROM sales s JOIN customers c ON s.customer_id = c.customer_id "
        f"WHERE c.segment = {_q(s['segment'])} AND s.ts >= {lo} AND s.ts < {hi}",
        False,
    )


def top_products_units(s: Slots) -> tuple[tuple[str, ...], str, bool]:
    k, cat = s["k"], s["category"]
    return (
        (
            f"List the names of the {k} {cat} products that sold the most units, with their units sold, from most to least (ties by product id).",
            f"Which {k} products in the {cat} category sold the most units? Give name and units, highest first, ties broken by product id.",
        ),
        f"SELECT p.product_name, SUM(s.quantity) AS units FROM sales s JOIN products p ON s.product_id = p.product_id "
        f"WHERE p.category = {_q(cat)} GROUP BY p.product_id, p.product_name ORDER BY units DESC, p.product_id LIMIT {k}",
        True,
    )


def brand_channel_avg(s: Slots) -> tuple[tuple[str, ...], str, bool]:
    return (
        (
            f"What is the average sale amount per channel for {s['brand']} products?",
            f"For each sales channel, give the channel and the mean amount of sales of {s['brand']} products.",
        ),
        f"SELECT s.channel, AVG(s.amount) FROM sales s JOIN products p ON s.product_id = p.product_id "
        f"WHERE p.brand = {_q(s['brand'])} GROUP BY s.channel",
        False,
    )


def country_category_customers(s: Slots) -> tuple[tuple[str, ...], str, bool]:
    return (
        (
            f"How many different customers from {s['country']} bought {s['category']} products?",
            f"Count the distinct customers in {s['country']} who purchased products in the {s['category']} category.",
        ),
        f"SELECT COUNT(DISTINCT s.customer_id) FROM sales s JOIN customers c ON s.customer_id = c.customer_id "
        f"JOIN products p ON s.product_id = p.product_id WHERE c.country = {_q(s['country'])} AND p.category = {_q(s['category'])}",
        False,
    )


def store_monthly_revenue(s: Slots) -> tuple[tuple[str, ...], str, bool]:
    return (
        (
            f"Show the revenue of {s['store']} for each month of 2026 (month number and revenue), in month order.",
            f"Month by month in 2026, how much did {s['store']} sell? Give month number and revenue, in month order.",
        ),
        f"SELECT month(s.ts) AS month, SUM(s.amount) AS revenue FROM sales s JOIN stores st ON s.store_id = st.store_id "
        f"WHERE st.store_name = {_q(s['store'])} AND s.ts >= TIMESTAMPTZ '2026-01-01 00:00:00+00' AND s.ts < TIMESTAMPTZ '2027-01-01 00:00:00+00' "
        f"GROUP BY month ORDER BY month",
        True,
    )


def brand_top_city(s: Slots) -> tuple[tuple[str, ...], str, bool]:
    return (
        (
            f"Which city's stores sold the most units of {s['brand']} products (ties by city name)?",
            f"In which city did {s['brand']} products sell the most units? Break ties by city name.",
        ),
        f"SELECT st.city FROM sales s JOIN stores st ON s.store_id = st.store_id JOIN products p ON s.product_id = p.product_id "
        f"WHERE p.brand = {_q(s['brand'])} GROUP BY st.city ORDER BY SUM(s.quantity) DESC, st.city LIMIT 1",
        False,
    )


def category_price_list(s: Slots) -> tuple[tuple[str, ...], str, bool]:
    return (
        (
            f"List the names of {s['category']} products with a list price above {s['price']} dollars.",
            f"Which products in the {s['category']} category have a list price of more than {s['price']} dollars? Give their names.",
        ),
        f"SELECT product_name FROM products WHERE category = {_q(s['category'])} AND list_price > {s['price']}",
        False,
    )


# template -> (builder, slots it needs)
TEMPLATES: dict[str, tuple[Callable[[Slots], tuple[tuple[str, ...], str, bool]], tuple[str, ...]]] = {
    "region_revenue": (region_revenue, ("region",)),
    "segment_month_count": (segment_month_count, ("segment", "month")),
    "top_products_units": (top_products_units, ("k", "category")),
    "brand_channel_avg": (brand_channel_avg, ("brand",)),
    "country_category_customers": (country_category_customers, ("country", "category")),
    "store_monthly_revenue": (store_monthly_revenue, ("store",)),
    "brand_top_city": (brand_top_city, ("brand",)),
    "category_price_list": (category_price_list, ("category", "price")),
}


def build_question(template: str, slots: Slots, wording: int) -> Question:
    builder, _ = TEMPLATES[template]
    texts, sql, ordered = builder(slots)
    return Question(template, texts[wording % len(texts)], sql, ordered)
