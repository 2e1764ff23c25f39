from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0002_claim_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="annotationproject",
            name="published_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
