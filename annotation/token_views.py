"""A researcher's own API tokens, /account/tokens/: the list (name, first characters, created, last
used), a new token (its key shown this once: only its hash is stored) and revoking one. Staff only;
thin views over annotation.services.researcher_tokens."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import never_cache

from annotation.models import ResearcherToken
from annotation.services import researcher_tokens
from mwe_site.permissions import StaffRequiredMixin


class TokenCreateForm(forms.Form):
    name = forms.CharField(
        max_length=ResearcherToken._meta.get_field("name").max_length,
        help_text="What the token is for, e.g. 'analysis notebook'.",
    )


def _page(request: HttpRequest, *, form: TokenCreateForm, new=None, status: int = 200) -> HttpResponse:
    tokens = ResearcherToken.objects.filter(user=request.user, revoked_at=None)
    context = {"tokens": tokens, "form": form, "new": new}
    return render(request, "account/tokens.html", context, status=status)


# Never cached: the page that shows a new key must not be kept by the browser or a proxy.
@method_decorator(never_cache, name="dispatch")
class TokenListView(StaffRequiredMixin, View):
    def get(self, request: HttpRequest) -> HttpResponse:
        return _page(request, form=TokenCreateForm())

    def post(self, request: HttpRequest) -> HttpResponse:
        form = TokenCreateForm(request.POST)
        if not form.is_valid():
            return _page(request, form=form, status=400)
        try:
            new = researcher_tokens.researcher_token_create(user=request.user, name=form.cleaned_data["name"])
        except ValidationError as exc:
            form.add_error("name", exc)
            return _page(request, form=form, status=400)
        return _page(request, form=TokenCreateForm(), new=new)


class TokenRevokeView(StaffRequiredMixin, View):
    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        try:
            token = researcher_tokens.researcher_token_revoke(user=request.user, token_id=pk)
        except ResearcherToken.DoesNotExist:
            # Another researcher's token is "not found", like one that does not exist.
            raise Http404("No such live token of yours.") from None
        messages.info(request, f"Revoked the token {token.name!r}: it no longer works.")
        return redirect("account-tokens")
