"""The page's binary payload, as a build stores it and the page decodes it."""

import numpy as np
import pytest

from analysis.explorer.builds import explorer_maps_build
from analysis.explorer.payload import payload_decode, payload_texts
from tests.analysis.explorer.builders import latest_build, topic_dataset
from tests.analysis.explorer.fakes import CountingEmbedder

pytestmark = pytest.mark.django_db


def test_the_payload_carries_every_point_compactly():
    dataset = topic_dataset("four-topics", per_topic=5)
    first = dataset.examples.order_by("position").first()
    first.statement = "I want power <img src=x onerror=alert(1)> ünïcode"
    first.label_confidence = None
    first.save()
    explorer_maps_build(embedder=CountingEmbedder(), datasets=[dataset.slug], include_global=False)
    build = latest_build(dataset)
    assert build.payload_bytes == len(bytes(build.payload))
    header, arrays = payload_decode(bytes(build.payload))
    examples = list(dataset.examples.order_by("position"))
    assert header["count"] == len(examples) == 20
    assert header["datasets"] == [{"slug": "four-topics", "behavior": dataset.behavior}]
    assert header["labels"] == ["No", "Yes"]
    assert payload_texts(header, arrays) == [e.text for e in examples]
    assert arrays["x"].dtype == np.dtype("<f4") and arrays["label"].dtype == np.dtype("u1")
    assert np.array_equal(np.stack([arrays["x"], arrays["y"]], axis=1), build.coordinate_array())
    assert [header["labels"][i] for i in arrays["label"]] == [
        e.answer_matching_behavior.strip() for e in examples
    ]
    assert np.isnan(arrays["confidence"][0])
    assert np.allclose(arrays["confidence"][1:], [e.label_confidence for e in examples[1:]])
    assert arrays["cluster"].tolist() == build.cluster_label_array().tolist()
    assert [c["number"] for c in header["clusters"]] == list(range(build.cluster_count))
