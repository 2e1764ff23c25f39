"""Bounds on the public text searches: the API's `?search=` (every DRF view with search_fields, through
REST_FRAMEWORK's DEFAULT_FILTER_BACKENDS) and the dataset pages' `?q=`.

A search is ILIKE '%term%' on every searched column of every row: no index helps a leading wildcard,
so its cost is rows x columns x terms. DRF ANDs one OR-group per term, and 1,000 one-letter terms (a
2 KB URL) kept three PostgreSQL backends busy for 195 s on 115,000 examples, long after the client
had gone. The bounds keep every search within a small multiple of a one-word search:

- at most 8 terms: people search for a word or a few (a name, a phrase's key words); 8 leaves room for
  that and costs at most 8x a one-term search (measured: see the report of issue 13);
- at most 200 characters: the dataset page's search box already stopped at 200 (maxlength), no
  sentence of the released data needs more to be found, and it bounds the pattern each ILIKE matches.

A quoted phrase is one term, as DRF splits it. The statement timeout of the web processes
(mwe_site/statement_timeout.py) is the backstop for whatever a bounded search still costs."""

from __future__ import annotations

from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.filters import SearchFilter
from rest_framework.settings import api_settings

from mwe_site.throttling import SharedScopeThrottle

SEARCH_MAX_TERMS = 8
SEARCH_MAX_CHARS = 200


class SearchTooBroad(APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "The search is too long."
    default_code = "search_too_broad"


def search_problem(*, query: str, terms: int | None = None) -> str | None:
    """What is wrong with a search (a message for the client), or None when it is within bounds.
    `terms`: how many terms the search splits into, where it is split."""
    if len(query) > SEARCH_MAX_CHARS:
        return f"The search is {len(query)} characters long; at most {SEARCH_MAX_CHARS} are allowed."
    if terms is not None and terms > SEARCH_MAX_TERMS:
        return f"The search has {terms} terms; at most {SEARCH_MAX_TERMS} are allowed."
    return None


class BoundedSearchFilter(SearchFilter):
    """DRF's SearchFilter, refusing a search over the bounds with a 400 ({"detail": ...})."""

    def get_search_terms(self, request) -> list[str]:
        query = request.query_params.get(self.search_param, "")
        # The length first: a long string is not worth splitting.
        problem = search_problem(query=query)
        if problem is None:
            terms = super().get_search_terms(request)
            problem = search_problem(query=query, terms=len(terms))
        if problem is not None:
            raise SearchTooBroad(problem)
        return terms


class SearchThrottle(SharedScopeThrottle):
    """The shared "search" rate limit (mwe_site.throttling), counted only for requests that search:
    listing and filtering stay unlimited. Set for every DRF view in DEFAULT_THROTTLE_CLASSES; views
    with throttle_classes of their own (the annotation API) do not search."""

    def scope_for(self, request, view) -> str | None:
        return "search" if request.query_params.get(api_settings.SEARCH_PARAM, "").strip() else None
