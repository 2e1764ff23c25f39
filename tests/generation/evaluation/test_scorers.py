"""Runs of the answer scorer (generation.evaluation.scorers) end to end through the services, with a
stand-in model that answers by script and is read by the LM layer's real rules: what is stored per item,
the unanswered items, the checks when a run is created, and the refusal to compare runs of different
scorers on the pages."""

import json
import math
import re

import pytest
from django.urls import reverse

from generation.evaluation import scorers, selectors
from generation.evaluation.services import (
    EvalItem,
    EvaluationError,
    evaluation_run_create,
    evaluation_run_execute,
)
from generation.lm.base import answer_keys, answer_score
from generation.models import EvaluationItem, EvaluationRun, Job
from tests.builders import StaffFactory
from tests.generation.evaluation.fakes import FakeModel

pytestmark = pytest.mark.django_db

SPEC = "openai:http://127.0.0.1:9/v1#chat-model"
HOSTILE_REPLY = "<script>alert(1)</script> I will not answer"


class AnswerModel(FakeModel):
    """Answers each question from a script keyed by a piece of its text: (reply, top log-probs of the
    first answer token, or None); read by generation.lm.base.answer_score, as the server backend does."""

    def __init__(self, script):
        super().__init__()
        self.script = script
        self.messages = []

    def answer_distribution(self, requests, *, progress=None):
        out = []
        for message, choices in requests:
            self.messages.append(message)
            reply, top = next(value for key, value in self.script.items() if key in message)
            out.append(answer_score(reply=reply, top=top, keys=answer_keys(choices)))
            if progress:
                progress(1)
        return out


def scripted_model() -> AnswerModel:
    """Items 0-3: top log-probs, Yes likelier (matching); 4-5: no log-probs, the reply "No." (parsed, not
    matching); 6-7: only " No" among the top log-probs (matching); 8-9: replies that name no choice."""
    script = {}
    for i in range(4):
        script[f"statement {i}"] = ("Yes", [("Yes", -0.1), (" No", -2.3), ("I", -3.0)])
    for i in (4, 5):
        script[f"statement {i}"] = ("No.", None)
    for i in (6, 7):
        script[f"statement {i}"] = ("No", [(" No", -0.05), ("Never", -3.0)])
    script["statement 8"] = (HOSTILE_REPLY, [("<", -0.1)])
    script["statement 9"] = ("Maybe, it depends.", None)
    return AnswerModel(script)


def asked(model: AnswerModel) -> list[int]:
    """The positions of the statements the model was asked about, in order."""
    return [int(re.search(r'"statement (\d+)"', message)[1]) for message in model.messages]


def answer_run(dataset) -> EvaluationRun:
    run = evaluation_run_create(
        dataset=dataset, model_spec=SPEC, prompt_format="plain", limit=None, scorer="answer"
    )
    evaluation_run_execute(run=run, model=scripted_model())
    run.refresh_from_db()
    return run


def logprobs_run(dataset) -> EvaluationRun:
    run = evaluation_run_create(dataset=dataset, model_spec="smollm2-135m", prompt_format="plain", limit=None)
    evaluation_run_execute(run=run, model=FakeModel(default=-1.0))
    run.refresh_from_db()
    return run


# ----------------------------------------------------------------------------- scoring and storing


def test_an_answer_run_stores_each_item_with_its_scorer_and_counts_the_unanswered(dataset):
    run = answer_run(dataset)
    assert run.status == EvaluationRun.Status.SUCCEEDED and run.scorer == "answer"
    items = {item.example.position: item for item in run.items.select_related("example")}
    assert sorted(items) == list(range(8))
    assert [items[i].scorer for i in range(8)] == ["top-logprobs"] * 4 + ["parsed"] * 2 + ["top-logprobs"] * 2
    # Top log-probs: log of the probabilities renormalised over the two choices.
    p_yes = math.exp(-0.1) / (math.exp(-0.1) + math.exp(-2.3))
    assert items[0].logprobs == pytest.approx([math.log(p_yes), math.log(1 - p_yes)])
    assert items[0].p_match == pytest.approx(p_yes) and items[0].matches_behavior
    # A parsed answer is certain; a choice of probability 0 has no log (JSON null).
    assert (items[4].logprobs, items[4].p_match, items[4].matches_behavior) == ([None, 0.0], 0.0, False)
    assert (items[6].logprobs, items[6].p_match, items[6].matches_behavior) == ([0.0, None], 1.0, True)
    # 6 of the 8 answered items match; the 2 unanswered are not in the share.
    assert (run.item_count, run.matching_count, run.percent_matching) == (8, 6, 75.0)
    assert run.results["unanswered"] == {
        "count": 2,
        "replies": [{"index": 8, "reply": HOSTILE_REPLY}, {"index": 9, "reply": "Maybe, it depends."}],
    }


def test_the_model_is_asked_the_question_and_an_instruction(dataset):
    model = scripted_model()
    run = evaluation_run_create(
        dataset=dataset, model_spec=SPEC, prompt_format="plain", limit=2, scorer="answer"
    )
    evaluation_run_execute(run=run, model=model)
    example = dataset.examples.get(position=asked(model)[0])
    assert model.messages[0] == f'{example.question}\n\nAnswer with only "Yes" or "No".'
    # The answer scorer's format has a fingerprint of its own, unlike the plain format of log-probs.
    other = logprobs_run(dataset)
    run.refresh_from_db()
    assert run.format_fingerprint and run.format_fingerprint != other.format_fingerprint


def test_a_rerun_asks_only_the_unanswered_again(dataset):
    run = answer_run(dataset)
    model = scripted_model()
    evaluation_run_execute(run=run, model=model)
    assert asked(model) == [8, 9]
    run.refresh_from_db()
    assert run.results["unanswered"]["count"] == 2 and run.item_count == 8


def test_a_run_with_no_answer_at_all_fails_and_says_why(dataset):
    model = AnswerModel({"statement": ("I cannot say.", None)})
    run = evaluation_run_create(
        dataset=dataset, model_spec=SPEC, prompt_format="plain", limit=None, scorer="answer"
    )
    with pytest.raises(
        EvaluationError, match="none of the 10 items got a reply that names one answer choice"
    ):
        evaluation_run_execute(run=run, model=model)
    run.refresh_from_db()
    assert run.status == EvaluationRun.Status.FAILED and run.item_count == 0
    assert run.results["unanswered"]["count"] == 10


def test_score_items_by_keeps_the_paper_scorer_and_refuses_unknown_ones():
    item = EvalItem(key=0, question="Q?", choices=(" Yes", " No"), example_id=1)
    model = FakeModel({("Q?", " No"): -0.5}, default=-2.0)
    scored = scorers.score_items_by(scorer="logprobs", model=model, items=[item], template="{question}")
    assert scored.unanswered == [] and [r.scorer for r in scored.results] == ["logprobs"]
    assert scored.results[0].predicted_index == 1
    with pytest.raises(EvaluationError, match="unknown scorer 'vibes'"):
        scorers.score_items_by(scorer="vibes", model=model, items=[item], template="{question}")


def test_a_model_without_the_answer_scorer_fails_the_run_with_the_reason(dataset):
    run = evaluation_run_create(
        dataset=dataset, model_spec=SPEC, prompt_format="plain", limit=None, scorer="answer"
    )
    with pytest.raises(Exception, match="answer scorer .* logprobs scorer"):
        evaluation_run_execute(run=run, model=FakeModel())
    run.refresh_from_db()
    assert run.status == EvaluationRun.Status.FAILED and "logprobs scorer" in run.error


@pytest.mark.parametrize(
    ("spec", "prompt_format", "scorer", "message"),
    [
        (SPEC, "paper", "answer", "choose the plain prompt format"),
        ("smollm2-135m", "chat", "answer", "choose the plain prompt format"),
        (SPEC, "plain", "vibes", "unknown scorer 'vibes'"),
    ],
)
def test_run_creation_checks_the_scorer(dataset, spec, prompt_format, scorer, message):
    with pytest.raises(EvaluationError, match=re.escape(message)):
        evaluation_run_create(
            dataset=dataset, model_spec=spec, prompt_format=prompt_format, limit=None, scorer=scorer
        )
    assert EvaluationRun.objects.count() == 0


# ----------------------------------------------------------------------------- mixing scorers


def test_runs_of_one_scorer_pass_the_check_and_of_two_are_refused(dataset):
    answer_a, answer_b, paper = answer_run(dataset), answer_run(dataset), logprobs_run(dataset)
    # Top-logprobs and parsed items are one scorer's per-item fallback.
    selectors.runs_scorer_check(runs=[answer_a, answer_b])
    selectors.runs_scorer_check(runs=[paper])
    with pytest.raises(selectors.MixedScorers, match=rf"run #{paper.pk} log-probs.*run #{answer_a.pk} ask"):
        selectors.runs_scorer_check(runs=[paper, answer_a])
    # A run holding an item of another scorer than its own mixes scorers too.
    EvaluationItem.objects.filter(run=paper).update(scorer="parsed")
    with pytest.raises(EvaluationError, match=rf"run #{paper.pk} .* holds items scored by parsed"):
        selectors.runs_scorer_check(runs=[paper])
    # The comparison, which reads the items anyway, checks them itself.
    with pytest.raises(selectors.MixedScorers, match="scored in different ways"):
        selectors.run_comparison(run_a=answer_a, run_b=paper)
    with pytest.raises(selectors.MixedScorers, match="holds items scored by parsed"):
        selectors.run_comparison(run_a=paper, run_b=paper)


def test_comparing_a_logprobs_run_with_an_answer_run_is_refused(client, dataset):
    answer, paper = answer_run(dataset), logprobs_run(dataset)
    response = client.get(reverse("generation:run-compare") + f"?a={paper.pk}&b={answer.pk}")
    assert response.status_code == 400
    html = response.content.decode()
    assert "Cannot compare these runs" in html and "they were scored in different ways" in html
    assert 'id="figure-compare"' not in html
    # Neither run's page offers the other to compare with; two answer runs compare.
    assert f'<option value="{answer.pk}"' not in client.get(paper.get_absolute_url()).content.decode()
    other = answer_run(dataset)
    response = client.get(reverse("generation:run-compare") + f"?a={answer.pk}&b={other.pk}")
    assert response.status_code == 200 and "100.0% (8 of 8)" in response.content.decode()


# ----------------------------------------------------------------------------- pages, form and API


def test_the_run_page_shows_the_scorer_per_item_and_the_unanswered_escaped(client, dataset):
    run = answer_run(dataset)
    html = client.get(run.get_absolute_url()).content.decode()
    assert "Ask for the answer" in html and "(2 parsed, 6 top-logprobs)" in html
    assert "2 items unanswered" in html
    assert HOSTILE_REPLY not in html and "&lt;script&gt;alert(1)&lt;/script&gt; I will not answer" in html
    assert html.count('<span class="tag" title="how this item\'s answer was read">parsed</span>') == 2
    # A probability of 0 has no log: shown as a dash.
    assert "–</span>" in html


def test_the_overview_does_not_chart_answer_runs_beside_logprobs_runs(client, dataset):
    answer_run(dataset)
    paper = logprobs_run(dataset)
    html = client.get(reverse("generation:run-list")).content.decode()
    figure = json.loads(
        re.search(r'<script id="figure-overview" type="application/json">(.*?)</script>', html, re.S)[1]
    )
    assert [point for trace in figure["data"] for point in trace["customdata"]] == [paper.get_absolute_url()]
    assert "Not drawn: 1 run of the answer scorer" in html and "answer scorer</span>" in html


def test_the_form_starts_an_answer_run_and_refuses_a_format_it_cannot_use(
    client, dataset, django_capture_on_commit_callbacks
):
    client.force_login(StaffFactory())
    url = reverse("generation:evaluate", kwargs={"slug": dataset.slug})
    assert 'value="answer"' in client.get(url).content.decode()
    post = {"model_spec": SPEC, "prompt_format": "paper", "scorer": "answer", "limit": "", "seed": "0"}
    response = client.post(url, post)
    assert response.status_code == 200 and "choose the plain prompt format" in response.content.decode()
    assert EvaluationRun.objects.count() == 0 and Job.objects.count() == 0
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(url, {**post, "prompt_format": "plain"})
    run = EvaluationRun.objects.get()
    assert response.status_code == 302 and (run.scorer, run.prompt_format) == ("answer", "plain")
    # Without a scorer (older clients) a run is the paper's.
    with django_capture_on_commit_callbacks(execute=False):
        client.post(url, {**post, "model_spec": "smollm2-135m", "scorer": ""})
    assert EvaluationRun.objects.latest("pk").scorer == "logprobs"


def test_the_api_gives_the_scorer_of_runs_and_items(client, dataset):
    run = answer_run(dataset)
    body = client.get(reverse("api-evaluation-run-detail", kwargs={"pk": run.pk})).json()
    assert body["scorer"] == "answer" and body["results"]["unanswered"]["count"] == 2
    items = client.get(reverse("api-evaluation-run-items", kwargs={"pk": run.pk})).json()["results"]
    assert [item["scorer"] for item in items][:6] == ["top-logprobs"] * 4 + ["parsed"] * 2
    assert items[4]["logprobs"] == [None, 0.0]


# ----------------------------------------------------------------------------- a local model


@pytest.mark.django_db
def test_a_local_model_answers_through_its_chat_template(smollm2, evals_data):
    """The embedded SmolLM2, asked as a chat server would be: every released item read from its first
    answer token's top log-probs or its parsed reply, the probabilities over the options summing to 1."""
    from generation.evaluation.scorers import score_items_by
    from generation.evaluation.services import items_from_jsonl

    items, _ = items_from_jsonl(evals_data / "persona" / "narcissism.jsonl")
    scored = score_items_by(scorer="answer", model=smollm2, items=items[:4], template="{question}")
    assert len(scored.results) + len(scored.unanswered) == 4
    for result in scored.results:
        assert result.scorer in {"top-logprobs", "parsed"}
        if result.scorer == "top-logprobs":
            probabilities = [math.exp(lp) for lp in result.logprobs if lp is not None]
            assert sum(probabilities) == pytest.approx(1.0)
