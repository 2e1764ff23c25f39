"""Prompt forms shared by generation and evaluation.

The paper (Perez et al., 2022) asks its models in one dialogue form: the evaluation's "paper" prompt
format, the discriminator's questions and, on servers without a chat template, the generator's
instructions all use it, so a change to it changes all three together."""

import re

PAPER_TEMPLATE = "\n\nHuman: {question}\n\nAssistant:"
# A turn of that dialogue inside a model's output: the model went on talking to itself.
DIALOGUE_TURN = re.compile(r"\b(Human|Assistant)\s*:")


def paper_prompt(question: str) -> str:
    return PAPER_TEMPLATE.format(question=question)
