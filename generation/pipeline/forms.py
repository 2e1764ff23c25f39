from django import forms

from generation.models import GenerationRun
from generation.pipeline.methods import METHODS, GenerationError
from generation.pipeline.methods.base import AI_SYSTEM, PAPER, PERSON, SMALL_MODEL

ON, OFF = "on", "off"
NONE = "none"

PROFILE_CHOICES = [
    (
        PAPER,
        "paper: the paper's sampling (temperature 1.4, top-p 0.975; persona statements stop at a newline, "
        'a period or " -"), the discriminator\'s probabilities as they are',
    ),
    (
        SMALL_MODEL,
        "small model (ours): temperature 0.9, top-p 0.95 and batch calibration of the label question, "
        "which suit the embedded 135M model",
    ),
]
FRAMING_CHOICES = [
    ("", "the method's (persona: a person; multiple choice: an AI system)"),
    (PERSON, "Suppose there is a person who … (paper)"),
    (AI_SYSTEM, "Suppose there is an AI system that … (paper, the AI-risk personas)"),
]
CALIBRATE_CHOICES = [
    ("", "the profile's (paper: off; small model: on)"),
    (ON, "on"),
    (OFF, "off"),
]


class GenerateForm(forms.Form):
    """The parameters of a generation run of any method (generation.pipeline.methods): the fields
    declared here are every method's, and each method adds its own (Method.form_fields). The spec's
    own validate() is the one authority on what is allowed, so its errors are what the form shows.
    Each field's help says whether it is the paper's or ours."""

    method = forms.ChoiceField(
        choices=GenerationRun.Method.choices,
        initial="persona",
        help_text="; ".join(f"{name}: {method.form_help}" for name, method in METHODS.items()) + ".",
    )
    behavior = forms.CharField(max_length=200, help_text="A short name, e.g. 'politically liberal'.")
    description = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Completes 'Suppose there is a person who …' (or 'an AI system that …', by the framing), "
        "e.g. 'is politically liberal'.",
    )
    slug = forms.SlugField(max_length=150, help_text="Slug of the dataset the run creates.")
    profile = forms.ChoiceField(
        choices=PROFILE_CHOICES,
        initial=PAPER,
        # Not sent (a script's POST): the paper's.
        required=False,
        help_text="How the generator samples and whether the label question is calibrated. The fields "
        "below left empty take the profile's values.",
    )
    framing = forms.ChoiceField(
        choices=FRAMING_CHOICES,
        required=False,
        help_text="Who the prompts are about (the paper uses both).",
    )
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
        "default (50; Winogender 8), small for speed: the paper sampled 5,000 per label.",
    )
    keep_per_label = forms.IntegerField(
        required=False,
        min_value=1,
        help_text="Examples kept per label, at most: the top by rank among those above the floor "
        "(the paper's 500, the default; Winogender 2). It may exceed the candidates per label.",
    )
    floor = forms.FloatField(
        initial=0.5,
        min_value=0.0,
        max_value=1.0,
        help_text="Minimum label probability. 0.5 keeps the candidates whose label the discriminator "
        "finds the more likely (the paper's selection, for two labels).",
    )
    requirements = forms.CharField(
        required=False,
        max_length=200,
        help_text="Further questions to the discriminator, averaged into the rank (paper section 2), "
        "comma-separated, e.g. 'relevance'; empty: the method's (persona none, as in the paper; "
        "multiple choice relevance, as in section 5.2); 'none' for none.",
    )
    requirement_floor = forms.FloatField(
        required=False,
        min_value=0.0,
        max_value=1.0,
        help_text="Ours: minimum probability on each requirement; empty: none (the paper floors no "
        "requirement, it averages them into the rank).",
    )
    balance_labels = forms.BooleanField(
        required=False,
        help_text="Ours: keep only as many of each label as the scarcest label has. Off: the paper's top "
        "K of each label, so one scarce label never empties the dataset.",
    )
    temperature = forms.FloatField(
        required=False, min_value=0.0, help_text="Sampling temperature; empty: the profile's."
    )
    top_p = forms.FloatField(
        required=False,
        min_value=0.0,
        max_value=1.0,
        help_text="Nucleus sampling top-p; empty: the profile's.",
    )
    max_tokens = forms.IntegerField(
        required=False,
        min_value=1,
        help_text="Tokens per sample, at most; empty: the profile's ("
        + "; ".join(
            f"{profile}: "
            + ", ".join(f"{name} {method.profiles[profile].max_tokens}" for name, method in METHODS.items())
            for profile in (PAPER, SMALL_MODEL)
        )
        + "; persona's 48 is the paper's).",
    )
    seed = forms.IntegerField(
        initial=0, min_value=0, max_value=2**31 - 1, help_text="The same seed and models give the same run."
    )
    near_duplicate = forms.FloatField(
        initial=0.9,
        help_text="Ours: cosine similarity (MiniLM) at or above which a candidate is a near duplicate.",
    )
    calibrate = forms.ChoiceField(
        choices=CALIBRATE_CHOICES,
        required=False,
        help_text="Ours: batch calibration, dividing out the discriminator's mean answer to the label "
        "question (never to a requirement).",
    )

    # Fields whose empty value means "the method's or the profile's", or that need converting.
    SPECIAL = ("method", "profile", "framing", "requirements", "calibrate")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Which method reads each of the fields that only one method reads: the page shows the chosen
        # method's (static/js/generation_form.js); every field is still sent and validated.
        self.field_methods: dict[str, str] = {}
        for name, method in METHODS.items():
            fields = method.form_fields()
            self.fields.update(fields)
            self.field_methods.update(dict.fromkeys(fields, name))

    def fields_with_methods(self) -> list[tuple[forms.BoundField, str]]:
        """Each field with the method that alone reads it ("" for a field every method reads)."""
        return [(field, self.field_methods.get(field.name, "")) for field in self]

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        method = METHODS[data["method"]]
        # The fields declared here are every method's; an empty optional one means the default.
        values = {
            name: data[name]
            for name in self.base_fields
            if name not in self.SPECIAL and data[name] is not None
        }
        for name in ("profile", "framing"):
            if data[name]:
                values[name] = data[name]
        if data["calibrate"]:
            values["calibrate"] = data["calibrate"] == ON
        requirements = data["requirements"].strip()
        if requirements:
            values["requirements"] = (
                ()
                if requirements.casefold() == NONE
                else tuple(r.strip() for r in requirements.split(",") if r.strip())
            )
        try:
            values.update(method.spec_values_from_form(data))
            self.spec = method.spec_class(**values)
            self.spec.validate()
        except GenerationError as exc:
            raise forms.ValidationError(str(exc)) from None
        return data
