"""REST API over evaluation suites: anyone reads them (a suite's rows and its runs' ids and states);
staff start one (POST), which queues the job that runs it, as the suite form does."""

from __future__ import annotations

from django.db.models import Count, Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.response import Response

from generation.evaluation.jobs import suite_start
from generation.evaluation.selectors import run_error_visible
from generation.evaluation.serializers import StaffOnlyErrorField
from generation.evaluation.services import EvaluationError
from generation.evaluation.suites import (
    MAX_SEED,
    MAX_SUITE_DATASETS,
    MAX_SUITE_MODELS,
)
from generation.models import EvaluationRun, EvaluationSuite, PromptFormat, RunScorer


class IsStaffOrReadOnly(permissions.BasePermission):
    """Reads for everyone; starting a suite (model work on the site's workers) for staff only, as the
    suite form and the evaluate form are."""

    def has_permission(self, request, view) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        return bool(run_error_visible(user=request.user))


class SuiteRunSerializer(serializers.ModelSerializer):
    dataset = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    url = serializers.HyperlinkedIdentityField(view_name="api-evaluation-run-detail")

    class Meta:
        model = EvaluationRun
        fields = ["id", "url", "model_spec", "dataset", "status", "item_count", "percent_matching"]
        read_only_fields = fields


class EvaluationSuiteSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api-evaluation-suite-detail")
    page_url = serializers.SerializerMethodField()
    datasets = serializers.SlugRelatedField(slug_field="slug", many=True, read_only=True)
    error = StaffOnlyErrorField()
    job = serializers.PrimaryKeyRelatedField(read_only=True)
    results = serializers.JSONField(
        read_only=True,
        help_text="Per model, in the suite's order ({'models': [...]}): model_spec, model_name, "
        "model_fingerprint, load_seconds, scoring_seconds, items_scored, items_per_second (model load "
        "excluded) and error (empty, or why the model's runs failed).",
    )
    run_counts = serializers.SerializerMethodField()

    class Meta:
        model = EvaluationSuite
        # created_by is left out: who ran what is for the admin, not the public API.
        fields = [
            "id",
            "url",
            "page_url",
            "name",
            "model_specs",
            "datasets",
            "prompt_format",
            "scorer",
            "limit",
            "seed",
            "status",
            "error",
            "item_count",
            "results",
            "run_counts",
            "job",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_page_url(self, suite: EvaluationSuite) -> str:
        return suite.get_absolute_url()

    def get_run_counts(self, suite: EvaluationSuite) -> dict[str, int]:
        """How many of the suite's runs are in each state."""
        counts = getattr(suite, "run_status_counts", None)
        if counts is None:
            counts = suite.runs.values("status").annotate(n=Count("id")).values_list("status", "n")
        return {state: n for state, n in counts}


class EvaluationSuiteDetailSerializer(EvaluationSuiteSerializer):
    runs = SuiteRunSerializer(many=True, read_only=True)

    class Meta(EvaluationSuiteSerializer.Meta):
        fields = [*EvaluationSuiteSerializer.Meta.fields, "runs"]
        read_only_fields = fields


class SuiteCreateSerializer(serializers.Serializer):
    """What a suite is started with: models, and datasets by slug, by collection, or all of them."""

    model_specs = serializers.ListField(
        child=serializers.CharField(max_length=500), min_length=1, max_length=MAX_SUITE_MODELS
    )
    datasets = serializers.ListField(
        child=serializers.SlugField(max_length=150),
        required=False,
        default=list,
        max_length=MAX_SUITE_DATASETS,
    )
    collections = serializers.ListField(
        child=serializers.SlugField(max_length=100), required=False, default=list, max_length=100
    )
    all_datasets = serializers.BooleanField(required=False, default=False)
    prompt_format = serializers.ChoiceField(choices=PromptFormat.choices, default=PromptFormat.PAPER)
    scorer = serializers.ChoiceField(choices=RunScorer.choices, default=RunScorer.LOGPROBS)
    limit = serializers.IntegerField(min_value=1, required=False, allow_null=True, default=None)
    seed = serializers.IntegerField(min_value=0, max_value=MAX_SEED, default=0)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")

    def validate(self, attrs):
        if not (attrs["datasets"] or attrs["collections"] or attrs["all_datasets"]):
            raise serializers.ValidationError("give datasets, collections or all_datasets")
        return attrs


class EvaluationSuiteViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Evaluation suites: several models scored on several datasets in one background job, each
    (model, dataset) pair an evaluation run (/api/evaluation-runs/). The list gives each suite's counts
    of runs by state; one suite gives its runs' ids and states too. Staff start a suite with POST."""

    permission_classes = [IsStaffOrReadOnly]
    ordering_fields = ["created_at", "finished_at", "id"]
    search_fields = ["name"]

    def get_queryset(self):
        suites = EvaluationSuite.objects.prefetch_related("datasets").order_by("-created_at", "-id")
        if self.action in {"retrieve", "create"}:
            # In the order they were created: models in the suite's order, then datasets.
            suites = suites.prefetch_related(
                Prefetch("runs", queryset=EvaluationRun.objects.select_related("dataset").order_by("id"))
            )
        return suites

    def get_serializer_class(self):
        if self.action == "create":
            return SuiteCreateSerializer
        if self.action == "retrieve":
            return EvaluationSuiteDetailSerializer
        return EvaluationSuiteSerializer

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        if page is not None:
            # One query for the run counts of the whole page, not one per suite.
            counts: dict[int, list[tuple[str, int]]] = {suite.pk: [] for suite in page}
            rows = (
                EvaluationRun.objects.filter(suite_id__in=list(counts))
                .values("suite_id", "status")
                .annotate(n=Count("id"))
                .values_list("suite_id", "status", "n")
            )
            for suite_id, state, n in rows:
                counts[suite_id].append((state, n))
            for suite in page:
                suite.run_status_counts = counts[suite.pk]
        return page

    @extend_schema(request=SuiteCreateSerializer, responses={201: EvaluationSuiteDetailSerializer})
    def create(self, request, *args, **kwargs):
        """Starts a suite (staff): checks every model spec and dataset, records the suite and its
        runs, and queues the job that scores them; the answer names the suite and its job."""
        given = SuiteCreateSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        try:
            suite, _ = suite_start(
                model_specs=data["model_specs"],
                dataset_slugs=data["datasets"],
                collection_slugs=data["collections"],
                all_datasets=data["all_datasets"],
                prompt_format=data["prompt_format"],
                scorer=data["scorer"],
                limit=data["limit"],
                seed=data["seed"],
                name=data["name"],
                created_by=request.user,
            )
        except EvaluationError as exc:
            raise serializers.ValidationError({"detail": str(exc)}) from None
        suite = self.get_queryset().get(pk=suite.pk)
        body = EvaluationSuiteDetailSerializer(suite, context=self.get_serializer_context()).data
        return Response(body, status=status.HTTP_201_CREATED)
