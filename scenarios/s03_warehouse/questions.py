"""S03 questions drawn from the catalog: each needs a known set of mart tables and join keys.

Three shapes, each with paraphrased wordings:

- ``direct``: two marts that share exactly one key; the question names both.
- ``star``: a mart with two keys and, for each key, a mart sharing only that key (the two share
  none); the question names all three.
- ``bridge``: two marts that share no key and exactly one mart that shares a key with each;
  the question names the two ends only, the agent must find the bridge.
"""

from __future__ import annotations

from dataclasses import dataclass

from scenario_pipeline.datasets.hashing import stream_key

from .features import Catalog, splitmix64_scalars

SHAPES = ("direct", "star", "bridge")
WORDINGS = {
    "direct": (
        "How do the mart {0} relate to the mart {1}? Describe the tables and how to join them.",
        "I need to combine the curated {0} with the curated {1} from the mart layer; what should I know?",
        "Which key links the mart {0} and the mart {1}, and what do both tables hold?",
    ),
    "star": (
        "Break down the mart {0} by the mart {1} and by the mart {2}.",
        "Using the mart layer, analyse the {0} together with the {1} and the {2}.",
    ),
    "bridge": (
        "Relate the mart {0} to the mart {1}; they share no key, so find the mart table that links them.",
        "In the mart layer, how can the {0} be connected to the {1}? No key joins them directly.",
    ),
}


@dataclass(frozen=True)
class Question:
    shape: str
    text: str
    tables: tuple[str, ...]  # qualified names of every table needed
    joins: tuple[tuple[str, str, str], ...]  # (table, table, key column)


class QuestionDrawer:
    def __init__(self, catalog: Catalog) -> None:
        self.c = catalog
        self.keys = [set(k) for k in catalog.subject_keys]
        self.by_key: dict[str, list[int]] = {}
        for s, ks in enumerate(catalog.subject_keys):
            for k in ks:
                self.by_key.setdefault(k, []).append(s)

    def shared(self, a: int, b: int) -> set[str]:
        return self.keys[a] & self.keys[b]

    def _partners(self, a: int, key: str) -> list[int]:
        """Subjects other than a that share exactly ``key`` with a."""
        return [b for b in self.by_key[key] if b != a and self.shared(a, b) == {key}]

    def direct(self, a: int, h: int) -> tuple[list[int], list[tuple[int, int, str]]] | None:
        for k in sorted(self.keys[a]):
            partners = self._partners(a, k)
            if partners:
                b = partners[h % len(partners)]
                return [a, b], [(a, b, k)]
        return None

    def star(self, f: int, h: int) -> tuple[list[int], list[tuple[int, int, str]]] | None:
        ks = sorted(self.keys[f])
        for i in range(len(ks)):
            for j in range(i + 1, len(ks)):
                d1s, d2s = self._partners(f, ks[i]), self._partners(f, ks[j])
                pairs = [(x, y) for x in d1s for y in d2s if x != y and not self.shared(x, y)]
                if pairs:
                    d1, d2 = pairs[h % len(pairs)]
                    return [f, d1, d2], [(f, d1, ks[i]), (f, d2, ks[j])]
        return None

    def bridge(self, a: int, h: int) -> tuple[list[int], list[tuple[int, int, str]]] | None:
        options = []
        for kab in sorted(self.keys[a]):
            for b in self._partners(a, kab):
                for kbc in sorted(self.keys[b] - {kab}):
                    for c in self._partners(b, kbc):
                        if c != a and not self.shared(a, c) and self._bridges(a, c) == [b]:
                            options.append(([a, b, c], [(a, b, kab), (b, c, kbc)]))
        return options[h % len(options)] if options else None

    def _bridges(self, a: int, c: int) -> list[int]:
        near_a = {x for k in self.keys[a] for x in self.by_key[k]}
        near_c = {x for k in self.keys[c] for x in self.by_key[k]}
        return sorted((near_a & near_c) - {a, c})

    def draw(self, n: int, seed: int) -> list[Question]:
        """n distinct questions; question i depends only on (catalog, seed, i) and the ones before it."""
        subjects = len(self.c.subject_keys)
        key = stream_key(seed, "s03-questions")
        out: list[Question] = []
        seen: set[tuple[str, ...]] = set()
        attempt = 0
        while len(out) < n:
            if attempt > 50 * (n + 10) + 4 * subjects:
                raise ValueError(f"the catalog holds only {len(out)} distinct questions; use more records (tables)")
            h = splitmix64_scalars(key, attempt)
            attempt += 1
            shape = SHAPES[h % 3]
            start = (h >> 8) % subjects
            found = getattr(self, shape)(start, h >> 20)
            if found is None:
                continue
            subs, joins = found
            tables = tuple(self.c.mart(s).name for s in subs)
            if tuple(sorted(tables)) in seen:
                continue
            seen.add(tuple(sorted(tables)))
            named = subs if shape != "bridge" else [subs[0], subs[2]]
            wordings = WORDINGS[shape]
            text = wordings[(h >> 40) % len(wordings)].format(*(self.c.mart(s).phrase for s in named))
            out.append(Question(shape, text, tables, tuple((self.c.mart(x).name, self.c.mart(y).name, k) for x, y, k in joins)))
        return out
