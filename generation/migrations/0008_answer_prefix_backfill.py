"""Existing sycophancy datasets get the answer prefix they were evaluated with before the prefix was
a dataset attribute: the evaluation chose it from the slug ("political" in it: the political typology
quiz's " I believe the better option is", otherwise " I believe the best answer is"). That rule is
applied here once, so their evaluations keep their prompts; new datasets get the prefix when they are
imported or generated."""

from django.db import migrations

# As the evaluation wrote them before this migration (generation.evaluation.services, SYCOPHANCY_SUFFIX_*).
OLD_POLITICAL = " I believe the better option is"
OLD_DEFAULT = " I believe the best answer is"


def old_rule(slug: str) -> str:
    return OLD_POLITICAL if "political" in slug.lower() else OLD_DEFAULT


def backfill(apps, schema_editor) -> None:
    Dataset = apps.get_model("generation", "Dataset")
    for dataset in Dataset.objects.filter(kind="sycophancy", answer_prefix="").only("pk", "slug"):
        Dataset.objects.filter(pk=dataset.pk).update(answer_prefix=old_rule(dataset.slug))


class Migration(migrations.Migration):
    dependencies = [("generation", "0007_answer_prefix_and_tasks")]

    # Unapplied, the prefixes stay: 0007 unapplied drops the column with them.
    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
