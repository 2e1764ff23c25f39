from django import forms

from generation.models import GenerationRun
from generation.pipeline.methods import METHODS, GenerationError


class GenerateForm(forms.Form):
    """The parameters of a generation run of any method (generation.pipeline.methods): the fields
    declared here are every method's, and each method adds its own (Method.form_fields). The spec's
    own validate() is the one authority on what is allowed, so its errors are what the form shows."""

    method = forms.ChoiceField(
        choices=GenerationRun.Method.choices,
        initial="persona",
        help_text="; ".join(f"{name}: {method.form_help}" for name, method in METHODS.items()) + ".",
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

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for method in METHODS.values():
            self.fields.update(method.form_fields())

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        method = METHODS[data["method"]]
        # The fields declared here are every method's; an empty optional one means the method's default.
        values = {
            name: data[name] for name in self.base_fields if name != "method" and data[name] is not None
        }
        try:
            values.update(method.spec_values_from_form(data))
            self.spec = method.spec_class(**values)
            self.spec.validate()
        except GenerationError as exc:
            raise forms.ValidationError(str(exc)) from None
        return data
