from django.contrib import admin

from generation.catalog.services import example_delete, example_save
from generation.models import (
    Candidate,
    Collection,
    Dataset,
    EvaluationItem,
    EvaluationRun,
    EvaluationSuite,
    Example,
    GenerationRun,
    Job,
)


@admin.register(Collection)
class CollectionAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "is_released", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = [
        "slug",
        "collection",
        "kind",
        "purpose",
        "origin",
        "behavior_direction",
        "example_count",
        "mean_label_confidence",
    ]
    list_filter = ["collection", "kind", "purpose", "origin", "behavior_direction"]
    # Set per dataset by staff (imports only give released files a default): suites flag inverse
    # scaling by it.
    list_editable = ["behavior_direction"]
    search_fields = ["slug", "behavior", "description", "source_path"]
    list_select_related = ["collection"]
    # Stats and provenance are derived from the examples and the imported file, never typed in.
    readonly_fields = [
        "example_count",
        "label_counts",
        "mean_label_confidence",
        "import_report",
        "source_path",
        "source_sha256",
        "field_order",
        "json_ensure_ascii",
        "created_by",
        "created_at",
        "updated_at",
    ]


@admin.register(Example)
class ExampleAdmin(admin.ModelAdmin):
    list_display = ["__str__", "short_text", "answer_matching_behavior", "label_confidence"]
    list_filter = ["dataset__collection", "dataset__kind"]
    search_fields = ["question", "statement", "dataset__slug"]
    list_select_related = ["dataset"]
    raw_id_fields = ["dataset"]
    readonly_fields = ["text_hash", "key_order"]
    # Counting 100k+ rows for the paginator on every page is slow on PostgreSQL.
    show_full_result_count = False

    @admin.display(description="text")
    def short_text(self, obj: Example) -> str:
        text = obj.text
        return text if len(text) <= 100 else text[:99] + "…"

    def save_model(self, request, obj, form, change):
        example_save(example=obj)

    def delete_model(self, request, obj):
        example_delete(example=obj)

    def delete_queryset(self, request, queryset):
        for example in queryset.select_related("dataset"):
            example_delete(example=example)


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "kind",
        "status",
        "progress_done",
        "progress_total",
        "created_by",
        "created_at",
    ]
    list_filter = ["kind", "status"]
    # A job's state is the worker's to write (generation.jobs.services); the admin only shows it.
    readonly_fields = [f.name for f in Job._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(EvaluationRun)
class EvaluationRunAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "dataset",
        "model_spec",
        "prompt_format",
        "status",
        "item_count",
        "percent_matching",
        "created_at",
    ]
    list_filter = ["status", "prompt_format", "dataset__collection"]
    search_fields = ["model_spec", "model_name", "dataset__slug"]
    list_select_related = ["dataset"]
    raw_id_fields = ["dataset", "suite", "job", "created_by"]
    # Runs are started from a dataset page or evaluate_model, and everything a run records is written
    # by generation.evaluation.services from the model and the stored items; the admin only shows it.
    readonly_fields = [f.name for f in EvaluationRun._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(EvaluationSuite)
class EvaluationSuiteAdmin(admin.ModelAdmin):
    list_display = ["__str__", "status", "prompt_format", "scorer", "item_count", "created_at"]
    list_filter = ["status", "prompt_format", "scorer"]
    search_fields = ["name"]
    raw_id_fields = ["job", "created_by"]
    # As runs: a suite is started from its page or evaluate_model and written by its service.
    readonly_fields = [f.name for f in EvaluationSuite._meta.fields] + ["datasets"]

    def has_add_permission(self, request):
        return False


@admin.register(EvaluationItem)
class EvaluationItemAdmin(admin.ModelAdmin):
    list_display = ["__str__", "run", "example", "predicted_index", "matches_behavior", "p_match"]
    list_filter = ["matches_behavior"]
    search_fields = ["run__model_spec", "example__dataset__slug"]
    list_select_related = ["run__dataset", "example__dataset"]
    # Pickers would list every run and example; ids are what one has in hand anyway.
    raw_id_fields = ["run", "example"]
    # The scores feed the run's summary; editing one here would make the two disagree.
    readonly_fields = ["choices", "logprobs", "predicted_index", "matches_behavior", "p_match"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False


@admin.register(GenerationRun)
class GenerationRunAdmin(admin.ModelAdmin):
    list_display = ["__str__", "behavior", "status", "dataset", "created_by", "created_at", "finished_at"]
    list_filter = ["status", "method"]
    search_fields = ["slug", "behavior", "description"]
    list_select_related = ["dataset", "created_by"]
    raw_id_fields = ["job", "dataset", "created_by"]
    # A run's spec and provenance are what make its dataset reproducible; they are written by
    # generation.pipeline.run from the spec and the loaded models, never typed in.
    readonly_fields = [f.name for f in GenerationRun._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(Candidate)
class CandidateAdmin(admin.ModelAdmin):
    list_display = ["__str__", "short_text", "label", "label_probability", "decision", "reason"]
    list_filter = ["decision", "label"]
    search_fields = ["text", "raw_output", "run__slug"]
    list_select_related = ["run"]
    # Pickers would list every run, candidate and example; ids are what one has in hand anyway.
    raw_id_fields = ["run", "duplicate_of", "example"]
    # The scores and decisions are the pipeline's record of why the dataset is what it is.
    readonly_fields = [
        "label",
        "sample_index",
        "seed",
        "prompt",
        "raw_output",
        "text",
        "scores",
        "label_probability",
        "decision",
        "reason",
    ]
    show_full_result_count = False

    @admin.display(description="text")
    def short_text(self, obj: Candidate) -> str:
        text = obj.text or obj.raw_output
        return text if len(text) <= 100 else text[:99] + "…"

    def has_add_permission(self, request):
        return False
