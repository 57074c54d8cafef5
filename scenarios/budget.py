"""What S01 and S03 share: a context judged against a token budget under the project's tokenizer."""

from __future__ import annotations

from dataclasses import dataclass

from scenario_pipeline.scenarios.tokenizer import count_tokens, truncate


@dataclass(frozen=True)
class BudgetedContext:
    tokens: int  # sp-regex-v1 tokens of the whole context
    compliant: bool  # tokens <= budget
    visible: str  # the first ``budget`` tokens: all a model with that window would see


def judge_context(context: str, budget: int) -> BudgetedContext:
    tokens = count_tokens(context)
    return BudgetedContext(tokens, tokens <= budget, context if tokens <= budget else truncate(context, budget))


def compression_ratio(source_tokens: int, context_tokens: int) -> float:
    """Tokens of the source over tokens of the context; an empty context counts as one token."""
    return source_tokens / max(context_tokens, 1)
