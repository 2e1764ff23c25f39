from django import forms

from generation.lm import ModelSpecError, parse_model_spec
from generation.models import PromptFormat


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
