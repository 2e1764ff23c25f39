from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0004_invites_sessions"),
    ]

    operations = [
        migrations.AddField(
            model_name="response",
            name="answer",
            field=models.CharField(blank=True, max_length=500),
        ),
    ]
