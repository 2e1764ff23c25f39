"""A stand-in language model for evaluation tests: answer log-probabilities from a table."""

from generation.lm import ChoiceScore, LanguageModel, LMError, ModelInfo


class FakeModel(LanguageModel):
    """Scores each choice from a table keyed by (prompt, choice); records what it was asked."""

    def __init__(self, table=None, *, fail_after=None, default=-5.0, name="fake"):
        self.info = ModelInfo(spec=name, backend="fake", name=name, fingerprint=f"{name}:1")
        self.table = table or {}
        self.default = default
        self.fail_after = fail_after
        self.requests = []
        self.calls = []  # the requests of each score_choices call, in order
        self.closed = False

    def score_choices(self, requests, *, progress=None):
        if self.fail_after is not None and len(self.requests) + len(requests) > self.fail_after:
            raise LMError("server went away")
        self.requests.extend(requests)
        self.calls.append(list(requests))
        out = []
        for context, choices in requests:
            out.append(
                [
                    ChoiceScore(
                        logprob=self.table.get((context, c), self.default),
                        token_logprobs=(self.table.get((context, c), self.default),),
                        tokens=(c,),
                        is_greedy=False,
                    )
                    for c in choices
                ]
            )
        if progress:
            progress(len(requests))
        return out

    def generate(self, prompts, params):
        return [["x"] * params.n for _ in prompts]

    def chat_prompt(self, user_message):
        return f"<user>{user_message}</user><assistant>"

    def close(self):
        self.closed = True


class FunctionModel(FakeModel):
    """Scores each choice with score(context, choice); records what it was asked."""

    def __init__(self, score, *, name="fake", fail_after=None):
        super().__init__(name=name, fail_after=fail_after)
        self.score = score

    def score_choices(self, requests, *, progress=None):
        if self.fail_after is not None and len(self.requests) + len(requests) > self.fail_after:
            raise LMError("server went away")
        self.requests.extend(requests)
        self.calls.append(list(requests))
        out = [
            [
                ChoiceScore(
                    logprob=self.score(context, c),
                    token_logprobs=(self.score(context, c),),
                    tokens=(c,),
                    is_greedy=False,
                )
                for c in choices
            ]
            for context, choices in requests
        ]
        if progress:
            progress(len(requests))
        return out


class FakeLoader:
    """A stand-in for load_model: hands out the model (or raises the error) given for each spec, and
    records every load."""

    def __init__(self, models):
        self.models = models
        self.loads = []

    def __call__(self, spec):
        self.loads.append(spec)
        model = self.models[spec]
        if isinstance(model, Exception):
            raise model
        return model
