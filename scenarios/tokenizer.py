"""The project's tokenizer, ``sp-regex-v1``: how S01 and S03 count a context against its budget.

No BPE vocabulary can be fetched at run time here (tiktoken downloads its files on first use),
so the project defines its own deterministic tokenizer, close to GPT-style BPE counts on the
text these scenarios produce (numbers, identifiers, short English):

1. Pre-tokenize with one regex, in this order of alternatives (as GPT-2/cl100k do):
   an English contraction suffix (``'s 't 're 've 'm 'll 'd``); an optional space plus a run of
   letters; an optional space plus 1-3 digits (cl100k splits numbers in groups of three); an
   optional space plus a run of other symbols (``_`` counts as a symbol); a run of whitespace.
2. Split long pieces the way a BPE vocabulary would: a letter piece of more than 8 letters
   becomes pieces of 6, 4, 4, ... letters (common short words stay whole, long or rare words
   cost about one token per four letters); a symbol piece becomes pieces of at most 3 symbols.

Every character belongs to exactly one token and ``"".join(tokenize(t)) == t``. The count of a
concatenation is the sum of the counts of its parts whenever the parts meet at a boundary the
regex cuts anyway (for example a digit followed by a space). Stable forever under this name:
changing the rules needs a new name.
"""

from __future__ import annotations

import re

NAME = "sp-regex-v1"

_PRE = re.compile(r"'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d{1,3}| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+")
_LONG_WORD = 8  # letters; longer words are split
_FIRST, _NEXT = 6, 4  # letters in the first and in every later piece of a split word
_SYMBOLS = 3  # symbols per piece


def _split(piece: str) -> list[str]:
    body = piece[1:] if piece[0] == " " else piece
    if not body:
        return [piece]
    lead = len(piece) - len(body)
    if body[0].isalpha() and len(body) > _LONG_WORD:
        cut = lead + _FIRST
        out = [piece[:cut]]
        out.extend(piece[i : i + _NEXT] for i in range(cut, len(piece), _NEXT))
        return out
    if not body[0].isalnum() and not body[0].isspace() and len(body) > _SYMBOLS:
        cut = lead + _SYMBOLS
        out = [piece[:cut]]
        out.extend(piece[i : i + _SYMBOLS] for i in range(cut, len(piece), _SYMBOLS))
        return out
    return [piece]


def tokenize(text: str) -> list[str]:
    """The tokens of ``text`` under sp-regex-v1 (their concatenation is ``text``)."""
    out: list[str] = []
    for piece in _PRE.findall(text):
        out.extend(_split(piece))
    return out


def count_tokens(text: str) -> int:
    """How many sp-regex-v1 tokens ``text`` costs."""
    n = 0
    for piece in _PRE.findall(text):
        n += len(_split(piece)) if len(piece) > _SYMBOLS else 1
    return n


def truncate(text: str, max_tokens: int) -> str:
    """The longest prefix of ``text`` that is at most ``max_tokens`` whole tokens."""
    if max_tokens <= 0:
        return ""
    tokens = tokenize(text)
    return text if len(tokens) <= max_tokens else "".join(tokens[:max_tokens])
