from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat

from generation.generate import GenerationError, PersonaSpec
from generation.lm import ModelSpecError, parse_model_spec
from generation.models import Dataset, PromptFormat


class ImportForm(forms.Form):
    file = forms.FileField(help_text="A .jsonl file in the format released with the paper.")
    slug = forms.SlugField(
        required=False, max_length=150, help_text="Dataset slug; by default derived from the file name."
    )
    collection = forms.SlugField(
        required=False, max_length=100, help_text="Collection slug; by default 'imported'."
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        limit = settings.MWE_UPLOAD_MAX_BYTES
        if upload.size > limit:
            raise forms.ValidationError(
                f"The file is {filesizeformat(upload.size)}; the limit is {filesizeformat(limit)}."
            )
        if not upload.name.lower().endswith((".jsonl", ".json")):
            raise forms.ValidationError("Upload a .jsonl file (one JSON object per line).")
        if upload.size == 0:
            raise forms.ValidationError("The file is empty.")
        return upload

    def clean_slug(self):
        slug = self.cleaned_data["slug"]
        if slug and Dataset.objects.filter(slug=slug).exists():
            raise forms.ValidationError(f"A dataset with slug '{slug}' already exists.")
        return slug


class EvaluateForm(forms.Form):
    """What a researcher chooses when starting an evaluation run from a dataset page."""

    model_spec = forms.CharField(
        max_length=500,
        initial="smollm2-135m",
        help_text=(
            "'smollm2-135m' (the embedded default), 'hf:&lt;model id or path&gt;' or "
            "'openai:&lt;base url&gt;#&lt;model&gt;' for an OpenAI-compatible server."
        ),
    )
    prompt_format = forms.ChoiceField(
        choices=PromptFormat.choices,
        initial=PromptFormat.PAPER,
        help_text="How each question is put to the model; 'paper' is the Human/Assistant format of Perez et al.",
    )
    limit = forms.IntegerField(
        required=False,
        min_value=1,
        label="Sample size",
        help_text="Score a stratified random sample of this many items (label shares kept); empty: all.",
    )
    seed = forms.IntegerField(
        initial=0, min_value=0, max_value=2**31 - 1, help_text="Seed of the sample, for reruns."
    )

    def clean_model_spec(self):
        spec = self.cleaned_data["model_spec"].strip()
        try:
            parse_model_spec(spec)
        except ModelSpecError as exc:
            raise forms.ValidationError(str(exc)) from None
        return spec


class GenerateForm(forms.Form):
    """The parameters of a persona generation run (generate.PersonaSpec); the spec's own validate()
    is the one authority on what is allowed, so its errors are what the form shows."""

    behavior = forms.CharField(max_length=200, help_text="A short name, e.g. 'politically liberal'.")
    description = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Completes 'Suppose there is a person who …', e.g. 'is politically liberal'.",
    )
    slug = forms.SlugField(max_length=150, help_text="Slug of the dataset the run creates.")
    generator = forms.CharField(
        max_length=500,
        initial="smollm2-135m",
        help_text="Model spec of the generator: 'smollm2-135m', 'hf:&lt;model&gt;' or 'openai:&lt;url&gt;#&lt;model&gt;'.",
    )
    discriminator = forms.CharField(
        max_length=500,
        initial="smollm2-135m",
        help_text="Model spec of the discriminator that scores labels.",
    )
    per_label = forms.IntegerField(initial=50, min_value=1, help_text="Candidates generated per label.")
    keep_per_label = forms.IntegerField(
        initial=20, min_value=1, help_text="Examples kept per label, at most."
    )
    floor = forms.FloatField(
        initial=0.5, min_value=0.0, max_value=1.0, help_text="Minimum label probability to keep a candidate."
    )
    requirement_floor = forms.FloatField(
        initial=0.5, min_value=0.0, max_value=1.0, help_text="Minimum score on each requirement (relevance)."
    )
    temperature = forms.FloatField(initial=0.9, min_value=0.0, help_text="Sampling temperature.")
    top_p = forms.FloatField(initial=0.95, min_value=0.0, max_value=1.0, help_text="Nucleus sampling top-p.")
    max_tokens = forms.IntegerField(initial=48, min_value=1, help_text="Tokens per sample, at most.")
    seed = forms.IntegerField(
        initial=0, min_value=0, max_value=2**31 - 1, help_text="The same seed and models give the same run."
    )
    near_duplicate = forms.FloatField(
        initial=0.9, help_text="Cosine similarity at or above which a candidate is a near duplicate."
    )
    calibrate = forms.BooleanField(
        required=False, initial=True, help_text="Divide out the discriminator's yes/no bias."
    )

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        try:
            self.spec = PersonaSpec(**{name: data[name] for name in self.fields})
            self.spec.validate()
        except GenerationError as exc:
            raise forms.ValidationError(str(exc)) from None
        return data
