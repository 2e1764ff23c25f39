from django import forms

from generation.models import Dataset, GenerationRun
from generation.pipeline.methods import METHODS, GenerationError
from generation.pipeline.methods.base import jsonl_objects
from generation.pipeline.methods.sycophancy import views_parse

# Fields of the generation form that only some methods read; the rest are every method's.
METHOD_FIELDS = {
    "multiple-choice": ("few_shot_dataset", "shots"),
    "sycophancy": ("views", "questions"),
    "winogender": ("occupations_dataset", "occupations_limit", "occupation_count"),
}


class GenerateForm(forms.Form):
    """The parameters of a generation run of any method (generation.pipeline.methods); the spec's own
    validate() is the one authority on what is allowed, so its errors are what the form shows."""

    method = forms.ChoiceField(
        choices=GenerationRun.Method.choices,
        initial="persona",
        help_text="persona: yes/no statements; multiple-choice: few-shot questions with two choices; "
        "sycophancy: biographies before base questions; winogender: sentences with a pronoun blank.",
    )
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
    per_label = forms.IntegerField(
        required=False,
        min_value=1,
        help_text="Candidates generated per label (per occupation for Winogender); empty: the method's "
        "default (50; Winogender 8).",
    )
    keep_per_label = forms.IntegerField(
        required=False, min_value=1, help_text="Examples kept per label, at most; empty: 20 (Winogender 2)."
    )
    floor = forms.FloatField(
        initial=0.5, min_value=0.0, max_value=1.0, help_text="Minimum label probability to keep a candidate."
    )
    requirement_floor = forms.FloatField(
        initial=0.5, min_value=0.0, max_value=1.0, help_text="Minimum score on each requirement (relevance)."
    )
    temperature = forms.FloatField(initial=0.9, min_value=0.0, help_text="Sampling temperature.")
    top_p = forms.FloatField(initial=0.95, min_value=0.0, max_value=1.0, help_text="Nucleus sampling top-p.")
    max_tokens = forms.IntegerField(
        required=False,
        min_value=1,
        help_text="Tokens per sample, at most; empty: the method's default (persona 48, multiple choice "
        "160, sycophancy 120, Winogender 64).",
    )
    seed = forms.IntegerField(
        initial=0, min_value=0, max_value=2**31 - 1, help_text="The same seed and models give the same run."
    )
    near_duplicate = forms.FloatField(
        initial=0.9, help_text="Cosine similarity at or above which a candidate is a near duplicate."
    )
    calibrate = forms.BooleanField(
        required=False, initial=True, help_text="Divide out the discriminator's yes/no bias."
    )

    few_shot_dataset = forms.ModelChoiceField(
        queryset=Dataset.objects.filter(kind=Dataset.Kind.MULTIPLE_CHOICE).order_by("-purpose", "slug"),
        required=False,
        to_field_name="slug",
        help_text="Multiple choice: the dataset whose questions are the few-shot examples "
        "(e.g. a prompts_for_few_shot_generation file).",
    )
    shots = forms.IntegerField(
        required=False, min_value=1, max_value=20, help_text="Multiple choice: examples per prompt (5)."
    )
    views = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Sycophancy: one view per line, NAME=DESCRIPTION, e.g. liberal=is politically liberal.",
    )
    questions = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text='Sycophancy: base questions, one JSON object per line: {"question": "... (A) ... (B) ...", '
        '"answers": {"liberal": " (B)", "conservative": " (A)"}}.',
    )
    occupations_dataset = forms.ModelChoiceField(
        queryset=Dataset.objects.filter(kind=Dataset.Kind.WINOGENDER).order_by("slug"),
        required=False,
        to_field_name="slug",
        help_text="Winogender: take occupations from this dataset; empty: the generator writes them.",
    )
    occupations_limit = forms.IntegerField(
        required=False, min_value=1, help_text="Winogender: use the first N occupations of the dataset."
    )
    occupation_count = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=500,
        help_text="Winogender: occupations the generator writes and keeps (10).",
    )

    def clean(self):
        from generation.pipeline.selectors import few_shot_examples_get, occupations_get

        data = super().clean()
        if self.errors:
            return data
        method = data["method"]
        only = {name for names in METHOD_FIELDS.values() for name in names}
        # An empty optional field means the method's own default.
        values = {
            name: data[name]
            for name in self.fields
            if name not in only and name != "method" and data[name] is not None
        }
        if method == "multiple-choice":
            if data["few_shot_dataset"] is None:
                raise forms.ValidationError("Choose the dataset of few-shot examples.")
            values["examples"] = tuple(few_shot_examples_get(dataset_slug=data["few_shot_dataset"].slug))
            if data["shots"]:
                values["shots"] = data["shots"]
        elif method == "sycophancy":
            try:
                values["views"] = views_parse(data["views"].splitlines())
                values["questions"] = tuple(jsonl_objects(data["questions"], what="Questions"))
            except GenerationError as exc:
                raise forms.ValidationError(str(exc)) from None
        elif method == "winogender":
            if data["occupations_dataset"] is not None:
                occupations = occupations_get(dataset_slug=data["occupations_dataset"].slug)
                values["occupations"] = tuple(occupations[: data["occupations_limit"] or None])
            if data["occupation_count"]:
                values["occupation_count"] = data["occupation_count"]
        try:
            self.spec = METHODS[method].spec_class(**values)
            self.spec.validate()
        except GenerationError as exc:
            raise forms.ValidationError(str(exc)) from None
        return data
