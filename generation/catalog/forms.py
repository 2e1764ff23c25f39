from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat

from generation.models import Dataset


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
