"""The LM layer: the only code in the project that talks to a language model.

model = load_model("smollm2-135m")
model.score_choices([("Is the sky blue?", [" Yes", " No"])])
model.generate(["Write a statement:"], SamplingParams(n=2, temperature=1.0, seed=0))
"""

from __future__ import annotations

from generation.lm.base import (
    ChoiceScore,
    LanguageModel,
    LMError,
    ModelInfo,
    ModelSpecError,
    SamplingParams,
    choice_probabilities,
    first_choice_probability,
    split_whitespace,
)
from generation.lm.specs import EMBEDDED_DEFAULT, ModelSpec, parse_model_spec

__all__ = [
    "EMBEDDED_DEFAULT",
    "ChoiceScore",
    "LMError",
    "LanguageModel",
    "ModelInfo",
    "ModelSpec",
    "ModelSpecError",
    "SamplingParams",
    "choice_probabilities",
    "first_choice_probability",
    "load_model",
    "parse_model_spec",
    "split_whitespace",
]


def load_model(spec: str | ModelSpec) -> LanguageModel:
    """Loads the model a spec names. Backends are imported here, on first use, so that code which
    only parses specs (forms, commands' argument checks) never pays for importing torch."""
    parsed = parse_model_spec(spec) if isinstance(spec, str) else spec
    if parsed.backend == "local":
        from generation.lm.local import LocalModel

        return LocalModel(parsed)
    from generation.lm.openai_compat import OpenAICompatibleModel

    return OpenAICompatibleModel(parsed)
