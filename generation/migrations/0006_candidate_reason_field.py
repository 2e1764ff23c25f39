from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("generation", "0005_candidate_reason_codes")]

    operations = [
        migrations.AlterField(
            model_name="candidate",
            name="reason",
            field=models.CharField(
                blank=True,
                choices=[
                    ("unparseable", "Unparseable"),
                    ("below_floor", "Label probability below the floor"),
                    ("failed_requirement", "Fails a requirement"),
                    ("exact_duplicate", "Exact duplicate"),
                    ("near_duplicate", "Near duplicate"),
                    ("not_top_k", "Not in the top K"),
                    ("top_k", "Kept: in the top K"),
                    ("other", "Other"),
                ],
                max_length=20,
            ),
        ),
        migrations.AddConstraint(
            model_name="candidate",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("reason", ""),
                    (
                        "reason__in",
                        [
                            "unparseable",
                            "below_floor",
                            "failed_requirement",
                            "exact_duplicate",
                            "near_duplicate",
                            "not_top_k",
                            "top_k",
                            "other",
                        ],
                    ),
                    _connector="OR",
                ),
                name="candidate_reason_valid",
            ),
        ),
    ]
