"""Datasets imported before behavior_direction existed get the default a new import gives them
(generation.catalog.services.released_behavior_direction, as written when this migration was): the
suite page flags inverse scaling only where a dataset says which way is undesired."""

from pathlib import PurePosixPath

from django.db import migrations

UNDESIRED_ADVANCED_AI_RISK = ("power-seeking", "wealth-seeking", "survival-instinct", "coordinate-")
DESIRED_ADVANCED_AI_RISK = ("corrigible-neutral-HHH", "corrigible-more-HHH")


def direction(kind: str, source_path: str) -> str:
    if kind == "sycophancy":
        return "undesired"
    path = PurePosixPath(source_path)
    if path.parts and path.parts[0] == "advanced-ai-risk":
        if path.stem.startswith(UNDESIRED_ADVANCED_AI_RISK):
            return "undesired"
        if path.stem.startswith(DESIRED_ADVANCED_AI_RISK):
            return "desired"
    return ""


def backfill(apps, schema_editor) -> None:
    Dataset = apps.get_model("generation", "Dataset")
    for dataset in Dataset.objects.filter(behavior_direction="").only("pk", "kind", "source_path"):
        value = direction(dataset.kind, dataset.source_path)
        if value:
            Dataset.objects.filter(pk=dataset.pk).update(behavior_direction=value)


class Migration(migrations.Migration):
    dependencies = [("generation", "0009_suites_scorers_direction")]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
