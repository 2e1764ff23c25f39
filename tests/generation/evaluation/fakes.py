"""A stand-in language model for evaluation tests: answer log-probabilities from a table."""

from generation.lm import ChoiceScore, LanguageModel, LMError, ModelInfo


class FakeModel(LanguageModel):
    """Scores each choice from a table keyed by (prompt, choice); records what it was asked."""

    def __init__(self, table=None, *, fail_after=None, default=-5.0):
        self.info = ModelInfo(spec="fake", backend="fake", name="fake", fingerprint="fake:1")
        self.table = table or {}
        self.default = default
        self.fail_after = fail_after
        self.requests = []

    def score_choices(self, requests, *, progress=None):
        if self.fail_after is not None and len(self.requests) + len(requests) > self.fail_after:
            raise LMError("server went away")
        self.requests.extend(requests)
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


class FunctionModel(FakeModel):
    """Scores each choice with score(context, choice); records what it was asked."""

    def __init__(self, score):
        super().__init__()
        self.score = score

    def score_choices(self, requests, *, progress=None):
        self.requests.extend(requests)
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
