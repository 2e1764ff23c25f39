"""The language models a worker process keeps loaded between jobs: loading one takes longer than
scoring a small dataset, and consecutive jobs (evaluations, generations) usually name the same
models."""

from generation.lm import LanguageModel, load_model

MAX_LOADED_MODELS = 2  # a generator and a discriminator
_loaded_models: dict[str, LanguageModel] = {}


def worker_model(spec: str) -> LanguageModel:
    """The model a spec names, loaded once per process; when a third is needed, the one loaded
    earliest is closed."""
    if spec not in _loaded_models:
        while len(_loaded_models) >= MAX_LOADED_MODELS:
            _loaded_models.pop(next(iter(_loaded_models))).close()
        _loaded_models[spec] = load_model(spec)
    return _loaded_models[spec]
