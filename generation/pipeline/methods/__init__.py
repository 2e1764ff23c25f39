"""The generation methods of the paper, each a small class the pipeline (generation.pipeline.run) drives:
persona statements (section 3), sycophancy biographies (section 4), few-shot multiple choice
(section 5) and Winogender schemas (section 6)."""

from __future__ import annotations

from typing import Any

from generation.pipeline.methods.base import BaseSpec, GenerationError, Method
from generation.pipeline.methods.multiple_choice import MultipleChoice, MultipleChoiceSpec
from generation.pipeline.methods.persona import Persona, PersonaSpec
from generation.pipeline.methods.sycophancy import Sycophancy, SycophancySpec
from generation.pipeline.methods.winogender import Winogender, WinogenderSpec

METHODS: dict[str, type[Method]] = {
    method.name: method for method in (Persona, MultipleChoice, Sycophancy, Winogender)
}

__all__ = [
    "METHODS",
    "BaseSpec",
    "GenerationError",
    "Method",
    "MultipleChoiceSpec",
    "PersonaSpec",
    "SycophancySpec",
    "WinogenderSpec",
    "method_for",
    "spec_from_dict",
]


def spec_from_dict(*, method: str, data: dict[str, Any]) -> BaseSpec:
    if method not in METHODS:
        raise GenerationError(f"unknown method {method!r}; known: {sorted(METHODS)}")
    return METHODS[method].spec_class.from_dict(data)


def method_for(spec: BaseSpec) -> Method:
    return METHODS[spec.method](spec)
