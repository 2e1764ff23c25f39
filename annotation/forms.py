"""The researchers' form for a new annotation project (the create_project command validates its
arguments through the same form, so the page and the shell accept and refuse exactly the same
input), the worker's task form and the invite page's form."""

from __future__ import annotations

from django import forms
from django.db import IntegrityError

from annotation.models import AnnotationProject, Response, StudyPlatform
from annotation.selectors import example_answer_options
from annotation.services import interop
from annotation.services.projects import project_create
from annotation.services.studies import COMPLETION_CODE, MAX_STUDY_QUOTA
from annotation.services.workers import worker_external_ids_parse
from generation.models import Dataset, Example

MAX_INSTRUCTIONS = 20_000
MAX_LEASE_SECONDS = 24 * 3600
MAX_PER_LABEL = 100_000
MAX_SESSIONS_PER_WORKER = 100


RELEVANCE_CHOICES = [(1, "1 Horrible"), (2, "2 Bad"), (3, "3 Okay"), (4, "4 Good"), (5, "5 Amazing")]
YES_NO = [("yes", "Yes"), ("no", "No")]
# Keys that pick an answer option on the worker page (annotate.js), in the options' order; none of
# them is taken by another shortcut (1-5 relevance, y/n ambiguity, s skip).
ANSWER_KEYS = "abcdefgh"


class TaskForm(forms.Form):
    """The paper's crowd task (Perez et al., 2022, §3.3), its three questions in the paper's words.
    The worker chooses an answer among the example's options and is never shown the label; the
    ambiguity question is an explicit yes/no that must be answered (an unticked box would read as
    "no" when the worker merely skipped it)."""

    relevance = forms.TypedChoiceField(
        choices=RELEVANCE_CHOICES,
        coerce=int,
        widget=forms.RadioSelect,
        label="Is this a good question for testing the described behavior?",
        help_text="Rate on a 1 (Horrible) - 5 (Amazing) point scale.",
        error_messages={"required": "Rate the question from 1 (Horrible) to 5 (Amazing)."},
    )
    answer = forms.ChoiceField(
        widget=forms.RadioSelect,
        label="What is the correct answer to this question? If it's ambiguous, make your best guess anyways.",
        error_messages={"required": "Choose the correct answer to the question."},
    )
    ambiguous = forms.TypedChoiceField(
        choices=YES_NO,
        coerce=lambda value: value == "yes",
        widget=forms.RadioSelect,
        label="Is it unclear or ambiguous what the 'correct' answer should be?",
        error_messages={"required": "Say whether the correct answer is unclear or ambiguous."},
    )
    # Optional: a note for the researchers and the "broken example" flag (the project page lists
    # them for review). Bounded like the model field.
    comment = forms.CharField(
        required=False,
        max_length=Response._meta.get_field("comment").max_length,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Comment for the researchers (optional)",
    )
    flagged_broken = forms.BooleanField(
        required=False,
        label="This example is broken (garbled, off-topic, or no answer fits)",
    )
    # Filled in by static/annotation/annotate.js from the time the page was shown; the server's own
    # measure (since the claim) caps it, so a wrong clock cannot inflate it.
    time_on_task_ms = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)

    def __init__(self, *args, example: Example, **kwargs):
        super().__init__(*args, **kwargs)
        # The value is the option as the example spells it (" Yes"); the worker reads it without
        # the leading space. The order is neutral (selectors.example_answer_options).
        self.fields["answer"].choices = [
            (option, option.strip()) for option in example_answer_options(example=example)
        ]

    @classmethod
    def for_response(cls, *, response: Response, example: Example, data=None) -> TaskForm:
        """The form to change a submitted response, showing its current answers."""
        initial = {
            "relevance": response.relevance,
            "answer": response.answer,
            "ambiguous": "yes" if response.ambiguous else "no",
            "comment": response.comment,
            "flagged_broken": response.flagged_broken,
        }
        return cls(data, example=example, initial=initial)

    def answer_key(self, index: int) -> str:
        return ANSWER_KEYS[index] if index < len(ANSWER_KEYS) else ""

    def answer_choices_with_keys(self) -> list[tuple]:
        """(radio widget, shortcut key) per answer option, for the template."""
        return [(choice, self.answer_key(index)) for index, choice in enumerate(self["answer"])]


class JoinForm(forms.Form):
    # What the worker may paste: the token, or the whole link (up to its "#").
    token = forms.CharField(max_length=2000, label="Invite code", strip=True)

    def cleaned_token(self) -> str:
        return self.cleaned_data["token"].rpartition("#")[2]


MAX_WORKERS_AT_ONCE = 500


class WorkersAddForm(forms.Form):
    """New workers of a project: how many, and optionally their ids on a crowd platform (checked as
    create_workers checks its file). cleaned_data["external_ids"] is then one id per worker."""

    count = forms.IntegerField(min_value=1, max_value=MAX_WORKERS_AT_ONCE, label="How many")
    external_ids = forms.CharField(
        required=False,
        # Not stripped: an id with surrounding whitespace is refused, not silently changed.
        strip=False,
        max_length=MAX_WORKERS_AT_ONCE * 210,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 40}),
        label="External ids (optional, one per line)",
    )

    def clean(self):
        cleaned = super().clean()
        count, text = cleaned.get("count"), cleaned.get("external_ids")
        if count is None or text is None:
            return cleaned
        if not text.strip("\r\n"):
            cleaned["external_ids"] = [""] * count
            return cleaned
        try:
            cleaned["external_ids"] = worker_external_ids_parse(text=text, count=count)
        except forms.ValidationError as exc:
            self.add_error("external_ids", exc)
        return cleaned


class ProjectCreateForm(forms.Form):
    name = forms.CharField(max_length=200)
    slug = forms.SlugField(
        max_length=100, help_text="Letters, digits, hyphens and underscores; names the project in URLs."
    )
    datasets = forms.ModelMultipleChoiceField(
        queryset=Dataset.objects.order_by("slug"),
        to_field_name="slug",
        widget=forms.SelectMultiple(attrs={"size": 8}),
        help_text="One or more datasets (hold Ctrl or Cmd to pick several).",
        error_messages={"invalid_choice": "No dataset %(value)s."},
    )
    per_dataset = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_PER_LABEL,
        label="Sample per dataset",
        help_text="N per dataset, balanced over labels: a random sample of this many examples of each "
        "dataset, split as evenly as its labels allow (the paper rated 100 per dataset); leave empty "
        "for all examples.",
    )
    per_label = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_PER_LABEL,
        label="Or: sample per dataset and label",
        help_text="Instead: this many examples of each dataset for each of its labels (two labels: "
        "twice as many). Leave empty to use the sample per dataset.",
    )
    seed = forms.IntegerField(
        initial=0, min_value=0, max_value=2**31 - 1, help_text="The same seed draws the same sample."
    )
    overlap = forms.IntegerField(
        initial=3,
        min_value=1,
        max_value=100,
        label="Overlap (k)",
        help_text="Workers who rate each example.",
    )
    lease_seconds = forms.IntegerField(
        initial=300,
        min_value=10,
        max_value=MAX_LEASE_SECONDS,
        label="Lease (seconds)",
        help_text="How long a worker holds an example before it returns to the pool.",
    )
    instructions = forms.CharField(
        required=False,
        max_length=MAX_INSTRUCTIONS,
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text="Markdown, shown to workers with each example (raw HTML is shown as text).",
    )
    gold_rate = forms.FloatField(
        initial=0.0,
        min_value=0.0,
        max_value=1.0,
        help_text="Share of tasks that are gold items with known answers (0 to 1).",
    )
    gold_threshold = forms.FloatField(
        initial=0.7,
        min_value=0.0,
        max_value=1.0,
        help_text="Workers whose gold accuracy falls below this are flagged (0 to 1).",
    )

    max_sessions_per_worker = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_SESSIONS_PER_WORKER,
        label="Browsers per worker",
        help_text="How many browsers a worker may be signed in on at once with their invite link "
        "(default 1: signing in on another one signs the first out).",
    )

    def clean_max_sessions_per_worker(self) -> int:
        value = self.cleaned_data["max_sessions_per_worker"]
        return 1 if value is None else value

    def clean_slug(self) -> str:
        slug = self.cleaned_data["slug"]
        if AnnotationProject.objects.filter(slug=slug).exists():
            raise forms.ValidationError(_slug_taken(slug))
        return slug

    def clean(self):
        cleaned = super().clean()
        datasets = cleaned.get("datasets")
        if datasets and not any(dataset.examples.exists() for dataset in datasets):
            self.add_error("datasets", "The selected datasets have no examples.")
        elif datasets:
            # Workers choose the correct answer among an item's answers: a dataset without any
            # (a Winogender set, say) could not be rated.
            unanswerable = [
                dataset.slug
                for dataset in datasets
                if dataset.examples.exists()
                and not dataset.examples.exclude(answer_matching_behavior="").exists()
            ]
            if unanswerable:
                self.add_error(
                    "datasets",
                    f"No answers to choose from in {', '.join(unanswerable)}: workers pick the correct "
                    "answer of each item, so only datasets with answer options can be rated.",
                )
        if cleaned.get("per_dataset") is not None and cleaned.get("per_label") is not None:
            self.add_error("per_label", "Give a sample per dataset or per dataset and label, not both.")
        return cleaned

    def create(self, *, created_by=None) -> AnnotationProject | None:
        """The project, made from the cleaned values by annotation.services.projects.project_create;
        the page, the API and the command all create through here. None, with the slug's error on the
        form, when a concurrent request took the slug since clean_slug: the insert was rolled back,
        so nothing was created."""
        slug = self.cleaned_data["slug"]
        try:
            return project_create(
                **{name: self.cleaned_data[name] for name in PROJECT_FIELDS}, created_by=created_by
            )
        except IntegrityError:
            if not AnnotationProject.objects.filter(slug=slug).exists():
                raise
            self.add_error("slug", _slug_taken(slug))
            return None


def _slug_taken(slug: str) -> str:
    return f"A project named {slug!r} already exists."


PROJECT_FIELDS = (
    "name",
    "slug",
    "datasets",
    "per_dataset",
    "per_label",
    "seed",
    "overlap",
    "lease_seconds",
    "instructions",
    "gold_rate",
    "gold_threshold",
    "max_sessions_per_worker",
)


class ProjectStudyForm(forms.Form):
    """A project's study link for a crowd platform and the payment report's settings
    (annotation.services.studies.project_study_link_set validates the same again)."""

    study_platform = forms.ChoiceField(
        choices=[("", "No study link (invite links only)"), *StudyPlatform.choices],
        required=False,
        label="Platform",
        help_text="Participants arrive through the study link with the platform's ids; the link makes "
        "their worker itself.",
    )
    study_quota = forms.IntegerField(
        min_value=1,
        max_value=MAX_STUDY_QUOTA,
        initial=20,
        label="Tasks per participant",
        help_text="Examples one participant rates (gold items included) before their completion code.",
    )
    completion_code = forms.RegexField(
        regex=COMPLETION_CODE,
        required=False,
        max_length=64,
        help_text="The code the platform expects (letters, digits, - and _).",
        error_messages={"invalid": "Use at most 64 letters, digits, hyphens and underscores."},
    )
    completion_url = forms.URLField(
        required=False,
        max_length=500,
        assume_scheme="https",
        label="Completion URL",
        help_text="Prolific: leave empty for Prolific's own (…/submissions/complete?cc=<code>). "
        "Mechanical Turk needs none.",
    )
    pay_per_hour = forms.DecimalField(
        required=False,
        min_value=0,
        max_digits=8,
        decimal_places=2,
        label="Pay per hour",
        help_text="For the payment report's estimate (hours on task x this rate).",
    )
    bonus_gold_accuracy = forms.FloatField(
        required=False,
        min_value=0.0,
        max_value=1.0,
        label="Bonus gold accuracy",
        help_text="Gold accuracy (0-1) at or above which a worker earns the bonus, after the project's "
        "minimum of gold answers.",
    )

    def clean_completion_url(self) -> str:
        url = self.cleaned_data["completion_url"]
        if url and not url.startswith("https://"):
            raise forms.ValidationError("Give an https:// address.")
        return url

    def clean(self):
        cleaned = super().clean()
        if (
            cleaned.get("study_platform")
            and not cleaned.get("completion_code")
            and not self.has_error("completion_code")
        ):
            self.add_error("completion_code", "A study link needs the completion code the platform expects.")
        return cleaned

    @classmethod
    def for_project(cls, project: AnnotationProject, data=None) -> ProjectStudyForm:
        initial = {name: getattr(project, name) for name in STUDY_FIELDS}
        return cls(data, initial=initial)

    def study_link_kwargs(self) -> dict:
        """The cleaned values, as project_study_link_set takes them."""
        data = self.cleaned_data
        return {
            "platform": data["study_platform"],
            "study_quota": data["study_quota"],
            "completion_code": data["completion_code"],
            "completion_url": data["completion_url"],
            "pay_per_hour": data["pay_per_hour"],
            "bonus_gold_accuracy": data["bonus_gold_accuracy"],
        }


STUDY_FIELDS = (
    "study_platform",
    "study_quota",
    "completion_code",
    "completion_url",
    "pay_per_hour",
    "bonus_gold_accuracy",
)


class InteropImportForm(forms.Form):
    format = forms.ChoiceField(
        choices=[
            (interop.LABEL_STUDIO, "Label Studio (JSON export)"),
            (interop.ARGILLA, "Argilla (zipped dataset folder)"),
        ]
    )
    file = forms.FileField()

    def clean_file(self):
        upload = self.cleaned_data["file"]
        limit = interop.MAX_IMPORT_BYTES
        if upload.size > limit:
            raise forms.ValidationError(f"The file is larger than {limit // (1024 * 1024)} MB.")
        if upload.size == 0:
            raise forms.ValidationError("The file is empty.")
        if not upload.name.lower().endswith((".json", ".zip")):
            raise forms.ValidationError("Upload a .json or .zip file.")
        return upload
