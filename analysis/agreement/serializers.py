"""The shapes of the agreement JSON documents (figures.json of a project and of one group), for the
API schema. The documents themselves are written by the reports' `as_dict` (analysis.agreement
selectors and figures); these serializers describe them, and a test checks that a real document has
exactly these fields (tests/annotation/test_researcher_api.py)."""

from __future__ import annotations

from rest_framework import serializers


class FigureSerializer(serializers.Serializer):
    value = serializers.FloatField(allow_null=True, help_text="Null when the figure is undefined.")
    ci = serializers.ListField(
        child=serializers.FloatField(),
        min_length=2,
        max_length=2,
        allow_null=True,
        help_text="The bootstrap confidence interval [low, high]; null without one.",
    )
    undefined = serializers.CharField(
        allow_null=True, help_text="Why the figure is undefined; null if it is not."
    )
    ci_undefined = serializers.CharField(
        allow_null=True, help_text="Why there is no interval; null if there is."
    )


def _figure(help_text: str = "") -> FigureSerializer:
    return FigureSerializer(help_text=help_text) if help_text else FigureSerializer()


class _Counts(serializers.DictField):
    def __init__(self, **kwargs):
        super().__init__(child=serializers.IntegerField(), **kwargs)


class BinaryAgreementSerializer(serializers.Serializer):
    fleiss_kappa = _figure()
    randolph_kappa = _figure()
    raw_agreement = _figure("Mean share of agreeing worker pairs.")
    unanimous = _figure("Share of examples where all k give the same answer.")
    krippendorff_alpha = _figure("Nominal.")


class AgreeWithLabelSerializer(BinaryAgreementSerializer):
    majority_agrees = _figure("Share of examples where a majority chose the label's answer.")


class AmbiguitySerializer(BinaryAgreementSerializer):
    distribution = serializers.DictField(
        child=FigureSerializer(), help_text='"j/k": the share of examples j of the k workers call ambiguous.'
    )


class AnswerAgreementSerializer(serializers.Serializer):
    fleiss_kappa = _figure("The paper's agreement: Fleiss' kappa on the chosen answers.")
    raw_agreement = _figure()
    unanimous = _figure()
    examples = serializers.IntegerField()
    options = serializers.ListField(child=serializers.CharField(), help_text="The answer categories.")
    excluded = _Counts(help_text="Examples left out, by reason.")


class RelevanceSerializer(serializers.Serializer):
    mean = _figure()
    sd = _figure()
    krippendorff_alpha = _figure("Ordinal.")
    distribution = serializers.DictField(
        child=FigureSerializer(), help_text='"1" to "5": the share of ratings.'
    )


class DiscriminatorSerializer(serializers.Serializer):
    examples = serializers.IntegerField(help_text="Examples with a label confidence.")
    spearman = _figure("Label confidence against the share of workers who chose the label's answer.")
    auc = _figure("Label confidence predicting that a majority chose the label's answer.")


class GroupFiguresSerializer(serializers.Serializer):
    """One group's figures: a dataset, a collection or everything (pooled)."""

    scope = serializers.ChoiceField(choices=["dataset", "collection", "pooled"])
    slug = serializers.CharField()
    name = serializers.CharField()
    collection = serializers.CharField(required=False, help_text="A dataset's collection (datasets only).")
    behavior = serializers.CharField(required=False, help_text="Datasets only.")
    category = serializers.CharField(required=False, help_text="Datasets only.")
    k = serializers.IntegerField(help_text="Ratings per example.")
    examples = serializers.IntegerField(help_text="Examples with exactly k ratings.")
    ratings = serializers.IntegerField()
    workers = serializers.IntegerField()
    excluded = _Counts(help_text="Examples left out, by reason.")
    answers = AnswerAgreementSerializer()
    agree_with_label = AgreeWithLabelSerializer()
    ambiguity = AmbiguitySerializer()
    relevance = RelevanceSerializer()
    discriminator = DiscriminatorSerializer()


class RatingOptionsSerializer(serializers.Serializer):
    include_gold_failing = serializers.BooleanField()
    include_excluded = serializers.BooleanField()
    bootstrap_replicates = serializers.IntegerField()
    seed = serializers.IntegerField()
    confidence = serializers.FloatField(help_text="Of the bootstrap intervals, e.g. 0.95.")


class LeftOutSerializer(serializers.Serializer):
    workers = _Counts(help_text="Workers whose ratings were left out, by reason.")
    ratings = serializers.IntegerField()


class ComparisonSerializer(serializers.Serializer):
    behavior = serializers.CharField()
    lm = serializers.CharField(help_text="The LM-written dataset's slug.")
    human = serializers.CharField(help_text="The human-written dataset's slug.")


class ProjectFiguresSerializer(serializers.Serializer):
    """A project's figures.json."""

    project = serializers.CharField()
    k = serializers.IntegerField()
    options = RatingOptionsSerializer()
    left_out = LeftOutSerializer()
    pooled = GroupFiguresSerializer()
    collections = GroupFiguresSerializer(many=True)
    datasets = GroupFiguresSerializer(many=True)
    lm_vs_human = ComparisonSerializer(many=True)


class CalibrationBinSerializer(serializers.Serializer):
    low = serializers.FloatField()
    high = serializers.FloatField()
    examples = serializers.IntegerField()
    mean_confidence = serializers.FloatField()
    mean_agreement = serializers.FloatField(help_text="Mean share of workers who chose the label's answer.")
    majority_agrees = serializers.FloatField()


class WorkerReliabilitySerializer(serializers.Serializer):
    worker = serializers.CharField(help_text="The worker's external id, or their id.")
    ratings = serializers.IntegerField()
    ds_accuracy = serializers.FloatField()
    says_correct_when_correct = serializers.FloatField(allow_null=True)
    says_incorrect_when_incorrect = serializers.FloatField(allow_null=True)
    agrees_with_majority = serializers.FloatField(allow_null=True)


class DawidSkeneSerializer(serializers.Serializer):
    examples = serializers.IntegerField()
    undefined = serializers.CharField(allow_null=True, help_text="Why the model could not be fitted.")
    ds_correct_share = serializers.FloatField(allow_null=True)
    majority_correct_share = serializers.FloatField(allow_null=True)
    disagreements = serializers.IntegerField()
    majority_ties = serializers.IntegerField()
    prior_correct = serializers.FloatField(allow_null=True)
    workers = WorkerReliabilitySerializer(many=True)


class GroupDetailSerializer(GroupFiguresSerializer):
    """One group's figures.json: its figures, the calibration bins and Dawid-Skene's aggregate."""

    project = serializers.CharField()
    options = RatingOptionsSerializer()
    calibration = CalibrationBinSerializer(many=True)
    dawid_skene = DawidSkeneSerializer()
