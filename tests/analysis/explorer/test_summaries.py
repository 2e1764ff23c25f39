"""Cluster summaries through the LM layer (a scripted stand-in model): prompts, the first sentence
kept, a model without a chat template, and a failing model that leaves the map with keywords."""

import pytest

from analysis.explorer import summaries
from analysis.explorer.builds import explorer_maps_build
from analysis.explorer.payload import payload_decode
from analysis.explorer.summaries import summary_clean
from analysis.models import ExplorerBuild
from tests.analysis.explorer.builders import latest_build, topic_dataset
from tests.analysis.explorer.fakes import CountingEmbedder, ScriptedSummaryModel

pytestmark = pytest.mark.django_db


def test_summaries_are_written_through_the_lm_layer_when_a_model_is_given():
    dataset = topic_dataset("four-topics")
    model = ScriptedSummaryModel("  These statements are about <b>one</b> topic.  Then more text.")
    explorer_maps_build(
        embedder=CountingEmbedder(), datasets=[dataset.slug], include_global=False, summary_model=model
    )
    build = latest_build(dataset)
    assert len(model.prompts) == 4
    assert model.prompts[0].startswith("<user>Here are statements") and "Keywords:" in model.prompts[0]
    # Kept as the model wrote it (first sentence only), markup included: pages escape it.
    assert {c.summary for c in build.clusters.all()} == {"These statements are about <b>one</b> topic."}
    assert build.summary_model_info["spec"] == "fake-summarizer"
    header, _ = payload_decode(bytes(build.payload))
    assert header["clusters"][0]["summary"] == "These statements are about <b>one</b> topic."


def test_a_model_without_a_chat_template_continues_a_started_answer():
    model = ScriptedSummaryModel(" are about wanting power. Also more.", chat=False)
    groups = [(["power"], ["I want power"]), (["cats"], ["I like cats"])]
    assert (
        summaries.cluster_summaries(model=model, groups=groups, seed=0)
        == ["These statements are about wanting power."] * 2
    )
    assert model.prompts[0].endswith("Answer: These statements")
    assert summaries.cluster_summaries(model=ScriptedSummaryModel("   "), groups=groups, seed=0) == ["", ""]


def test_a_failing_summary_model_leaves_a_map_with_keywords():
    dataset = topic_dataset("four-topics")
    explorer_maps_build(
        embedder=CountingEmbedder(),
        datasets=[dataset.slug],
        include_global=False,
        summary_model=ScriptedSummaryModel(fail=True),
    )
    build = latest_build(dataset)
    assert build.status == ExplorerBuild.Status.SUCCEEDED
    assert build.summary_model_info["error"] == "the summary model is down"
    assert all(c.keywords and not c.summary for c in build.clusters.all())


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("They want power. Also money.", "They want power."),
        ('"Statements about\n cats"', "Statements about cats"),
        ("x" * 300, "x" * 239 + "…"),
        ("", ""),
    ],
)
def test_summary_clean(raw, clean):
    assert summary_clean(raw) == clean
