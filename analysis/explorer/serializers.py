"""The shapes of the explorer's JSON endpoints (a point's details, semantic search), for the API
schema. The views write the documents themselves (analysis.explorer.selectors); a test checks that a
real document has exactly these fields (tests/annotation/test_researcher_api.py). Every text is as a
dataset, a model or a person wrote it: untrusted, to be shown as text."""

from __future__ import annotations

from rest_framework import serializers


class PointExampleSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.CharField()
    dataset = serializers.CharField()
    dataset_url = serializers.CharField()
    behavior = serializers.CharField()
    position = serializers.IntegerField()
    text = serializers.CharField()
    label = serializers.CharField(help_text="The answer matching the behavior, without surrounding spaces.")
    not_matching = serializers.ListField(child=serializers.CharField())
    label_confidence = serializers.FloatField(allow_null=True)


class PointClusterSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    keywords = serializers.ListField(child=serializers.CharField())
    summary = serializers.CharField(help_text="A model-written one-sentence summary, or empty.")


class PointNeighbourSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="The neighbour's point on this map.")
    similarity = serializers.FloatField(help_text="Cosine similarity of the embeddings.")
    text = serializers.CharField(help_text="Shortened.")
    dataset = serializers.CharField()
    url = serializers.CharField()


class AnswerCountSerializer(serializers.Serializer):
    answer = serializers.CharField()
    count = serializers.IntegerField()


class RatingProjectSerializer(serializers.Serializer):
    name = serializers.CharField()
    count = serializers.IntegerField()
    published = serializers.BooleanField()
    gold = serializers.IntegerField(help_text="Ratings of the example as a gold item.")
    url = serializers.CharField()


class PointRatingsSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    label_correct_share = serializers.FloatField(help_text="Share of ratings that chose the label's answer.")
    ambiguous_share = serializers.FloatField()
    relevance_mean = serializers.FloatField()
    answers = AnswerCountSerializer(many=True)
    answers_not_recorded = serializers.IntegerField()
    projects = RatingProjectSerializer(
        many=True, required=False, help_text="Staff only: the projects the ratings come from."
    )


class PointEvaluationSerializer(serializers.Serializer):
    run = serializers.IntegerField()
    url = serializers.CharField()
    model = serializers.CharField()
    format = serializers.CharField()
    p_match = serializers.FloatField(allow_null=True)
    matches = serializers.BooleanField(allow_null=True)


class PointDetailSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    example = PointExampleSerializer()
    cluster = PointClusterSerializer(allow_null=True)
    neighbours = PointNeighbourSerializer(many=True)
    ratings = PointRatingsSerializer(
        allow_null=True,
        help_text="Published projects' ratings (staff: every project's); null when there are none.",
    )
    evaluations = PointEvaluationSerializer(many=True, help_text="The newest finished evaluations, up to 20.")


class SearchResultSerializer(serializers.Serializer):
    indices = serializers.ListField(child=serializers.IntegerField(), help_text="Points, nearest first.")
    scores = serializers.ListField(child=serializers.FloatField(), help_text="Their cosine similarity.")


class SearchQuerySerializer(serializers.Serializer):
    q = serializers.CharField(help_text="What to look for, by meaning.")
    k = serializers.IntegerField(required=False, help_text="How many points (default 100).")


class ExplorerErrorSerializer(serializers.Serializer):
    error = serializers.CharField()
