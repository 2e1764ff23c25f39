"""The researchers' form for a new annotation project (the create_project command validates its
arguments through the same form, so the page and the shell accept and refuse exactly the same
input), and the invite page's form."""

from __future__ import annotations

from django import forms

from annotation.models import AnnotationProject
from generation.models import Dataset

MAX_INSTRUCTIONS = 20_000
MAX_LEASE_SECONDS = 24 * 3600
MAX_PER_LABEL = 100_000
MAX_SESSIONS_PER_WORKER = 100


class JoinForm(forms.Form):
    # What the worker may paste: the token, or the whole link (up to its "#").
    token = forms.CharField(max_length=2000, label="Invite code", strip=True)

    def cleaned_token(self) -> str:
        return self.cleaned_data["token"].rpartition("#")[2]


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
    per_label = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_PER_LABEL,
        label="Sample per dataset and label",
        help_text="A stratified random sample of this many examples per dataset and label (the paper "
        "rated 100); leave empty for all examples.",
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
            raise forms.ValidationError(f"A project named {slug!r} already exists.")
        return slug

    def clean(self):
        cleaned = super().clean()
        datasets = cleaned.get("datasets")
        if datasets and not any(dataset.examples.exists() for dataset in datasets):
            self.add_error("datasets", "The selected datasets have no examples.")
        return cleaned

    def project_create_kwargs(self) -> dict:
        """The cleaned values, as annotation.services.projects.project_create takes them."""
        return {name: self.cleaned_data[name] for name in PROJECT_FIELDS}

    def slug_was_taken(self) -> bool:
        """After a failed insert: did a concurrent request take the slug since clean_slug?"""
        return AnnotationProject.objects.filter(slug=self.cleaned_data["slug"]).exists()


PROJECT_FIELDS = (
    "name",
    "slug",
    "datasets",
    "per_label",
    "seed",
    "overlap",
    "lease_seconds",
    "instructions",
    "gold_rate",
    "gold_threshold",
    "max_sessions_per_worker",
)
