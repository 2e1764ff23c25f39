"""One-sentence cluster summaries, written through the LM layer when a summary model is configured
(MWE_EXPLORER_SUMMARY_MODEL)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from generation.lm import LanguageModel, LMError, SamplingParams

SUMMARY_EXAMPLES = 8
SUMMARY_CHARS = 240


def _summary_prompt(*, keywords: Sequence[str], texts: Sequence[str]) -> str:
    lines = "\n".join(f"- {' '.join(text.split())[:300]}" for text in texts)
    return (
        "Here are statements from one group of a dataset:\n"
        f"{lines}\n"
        f"Keywords: {', '.join(keywords)}\n"
        "Describe in one short sentence what these statements have in common."
    )


def summary_clean(text: str) -> str:
    """The first sentence of a model's answer, on one line and at most SUMMARY_CHARS long. The text
    stays untrusted: the page shows it as text, never as markup."""
    flat = " ".join(text.split()).strip(" \"'")
    match = re.search(r"(?<=[.!?])\s", flat)
    if match:
        flat = flat[: match.start()]
    if len(flat) > SUMMARY_CHARS:
        flat = flat[: SUMMARY_CHARS - 1].rstrip() + "…"
    return flat


def cluster_summaries(
    *, model: LanguageModel, groups: Sequence[tuple[Sequence[str], Sequence[str]]], seed: int
) -> list[str]:
    """One sentence per (keywords, representative texts) group, greedy, through the LM layer."""
    if not groups:
        return []
    prompts, prefixes = [], []
    for keywords, texts in groups:
        message = _summary_prompt(keywords=keywords, texts=texts)
        try:
            prompts.append(model.chat_prompt(message))
            prefixes.append("")
        except LMError:
            # A model without a chat template continues a started answer, which is part of the sentence.
            prompts.append(f"{message}\nAnswer: These statements")
            prefixes.append("These statements")
    outputs = model.generate(
        prompts, SamplingParams(n=1, temperature=0.0, max_tokens=60, stop=("\n",), seed=seed)
    )
    return [
        summary_clean(prefix + (completions[0] if completions else ""))
        if completions and completions[0].strip()
        else ""
        for prefix, completions in zip(prefixes, outputs, strict=True)
    ]
