from django import forms

from generation.evaluation.suites import EMBEDDED_SUITE_MODELS, MAX_SUITE_MODELS
from generation.lm import ModelSpecError, parse_model_spec
from generation.models import Collection, Dataset, PromptFormat, RunScorer


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
    scorer = forms.ChoiceField(
        choices=RunScorer.choices,
        initial=RunScorer.LOGPROBS,
        # Left out (older clients, scripts): the paper's.
        required=False,
        help_text=(
            "'logprobs' is the paper's: each answer's log-probability after the prompt. 'answer' is for "
            "servers without prompt log-probs (chat APIs): the model is asked for its answer through "
            "/chat/completions (plain prompt format only); see the model servers guide."
        ),
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

    def clean_scorer(self):
        return self.cleaned_data["scorer"] or RunScorer.LOGPROBS

    def clean_model_spec(self):
        spec = self.cleaned_data["model_spec"].strip()
        try:
            parse_model_spec(spec)
        except ModelSpecError as exc:
            raise forms.ValidationError(str(exc)) from None
        return spec


class SuiteForm(forms.Form):
    """What a researcher chooses when starting a suite: models by spec, datasets by name, by collection
    or all of them, and the settings every run of the suite shares."""

    model_specs = forms.CharField(
        label="Models",
        widget=forms.Textarea(attrs={"rows": 4}),
        initial="\n".join(EMBEDDED_SUITE_MODELS),
        # A spec is at most 500 characters; a few more per line for the newlines and spaces.
        max_length=MAX_SUITE_MODELS * 510,
        help_text=(
            f"One model spec per line, at most {MAX_SUITE_MODELS}: the embedded "
            f"{' and '.join(EMBEDDED_SUITE_MODELS)}, 'hf:&lt;model id or path&gt;' or "
            "'openai:&lt;base url&gt;#&lt;model&gt;'. Each is loaded once and scores every dataset."
        ),
    )
    datasets = forms.ModelMultipleChoiceField(
        queryset=Dataset.objects.filter(purpose=Dataset.Purpose.EVALUATION).order_by(
            "collection__slug", "slug"
        ),
        to_field_name="slug",
        required=False,
        widget=forms.SelectMultiple(attrs={"size": 12}),
        help_text="Evaluation datasets to score (Ctrl- or Cmd-click for several).",
    )
    collections = forms.ModelMultipleChoiceField(
        queryset=Collection.objects.order_by("slug"),
        to_field_name="slug",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Every scorable dataset of these collections.",
    )
    all_datasets = forms.BooleanField(
        required=False, label="All datasets", help_text="Every scorable evaluation dataset of the catalog."
    )
    prompt_format = forms.ChoiceField(
        choices=PromptFormat.choices,
        initial=PromptFormat.PAPER,
        help_text="How each question is put to the models; 'paper' is the Human/Assistant format of Perez et al.",
    )
    scorer = forms.ChoiceField(
        choices=RunScorer.choices,
        initial=RunScorer.LOGPROBS,
        help_text=(
            "'logprobs' is the paper's. 'answer' asks each model for its answer, for servers without "
            "prompt log-probs (plain prompt format only; the model's chat template is applied)."
        ),
    )
    limit = forms.IntegerField(
        required=False,
        min_value=1,
        label="Sample size",
        help_text="Per dataset, a stratified random sample of this many items (label shares kept); empty: all.",
    )
    seed = forms.IntegerField(
        initial=0, min_value=0, max_value=2**31 - 1, help_text="Seed of the samples, for reruns."
    )
    name = forms.CharField(max_length=200, required=False, help_text="Optional, to find the suite again.")

    def clean_model_specs(self) -> list[str]:
        specs = [line.strip() for line in self.cleaned_data["model_specs"].splitlines() if line.strip()]
        if not specs:
            raise forms.ValidationError("Give at least one model spec.")
        if len(specs) > MAX_SUITE_MODELS:
            raise forms.ValidationError(f"At most {MAX_SUITE_MODELS} models; {len(specs)} given.")
        for spec in specs:
            try:
                parse_model_spec(spec)
            except ModelSpecError as exc:
                raise forms.ValidationError(f"{spec}: {exc}") from None
        return specs

    def clean(self):
        data = super().clean()
        chosen = data.get("datasets") or data.get("collections") or data.get("all_datasets")
        # A dataset or collection that does not exist is its field's error already.
        if not chosen and not self.errors:
            raise forms.ValidationError("Choose datasets, collections or all datasets.")
        return data
