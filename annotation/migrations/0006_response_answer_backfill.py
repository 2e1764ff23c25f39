"""Fill in the answer of responses recorded before workers chose answers (issue 15).

Until then workers were shown the label and asked whether it was correct, so a response holds a
verdict (`label_correct`) and no answer. The answer it implies is recovered where it is unique:

- label judged correct: the label, `answer_matching_behavior`;
- label judged wrong, and the example has exactly one other answer: that one;
- label judged wrong among several other answers (e.g. PhilPapers sycophancy items): unknown, so
  `answer` stays empty and `label_correct` keeps the verdict.

Nothing is lost: `label_correct` is never changed, so undoing this migration only has to leave the
answers (the schema migration before it drops the column)."""

from django.db import migrations

BATCH = 2000


def backfill_answers(apps, schema_editor):
    Response = apps.get_model("annotation", "Response")
    pending = (
        Response.objects.filter(answer="")
        .select_related("item__example")
        .only(
            "pk",
            "answer",
            "label_correct",
            "item__example__answer_matching_behavior",
            "item__example__answer_not_matching_behavior",
        )
        .order_by("pk")
    )
    changed = []
    for response in pending.iterator(chunk_size=BATCH):
        answer = recovered_answer(
            label_correct=response.label_correct,
            matching=response.item.example.answer_matching_behavior,
            not_matching=response.item.example.answer_not_matching_behavior,
        )
        if answer:
            response.answer = answer
            changed.append(response)
        if len(changed) >= BATCH:
            Response.objects.bulk_update(changed, ["answer"])
            changed = []
    if changed:
        Response.objects.bulk_update(changed, ["answer"])


def recovered_answer(*, label_correct: bool, matching: str, not_matching) -> str:
    """The answer a label verdict implies, or "" when it does not single one out."""
    if label_correct:
        return matching or ""
    others = [] if not_matching is None else not_matching if isinstance(not_matching, list) else [not_matching]
    others = [answer for answer in others if answer and answer != matching]
    return others[0] if len(others) == 1 else ""


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0005_response_answer"),
    ]

    operations = [
        # Reverse: nothing to undo, as label_correct was never changed.
        migrations.RunPython(backfill_answers, migrations.RunPython.noop),
    ]
