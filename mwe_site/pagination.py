from django.http import Http404
from rest_framework.pagination import PageNumberPagination


class Pagination(PageNumberPagination):
    """Page-number pagination whose page size a client may choose, within a bound."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 1000


class LastPageOnOverflowMixin:
    """A page number past the end (e.g. after narrowing a search) shows the last page, not a 404."""

    def paginate_queryset(self, queryset, page_size):
        try:
            return super().paginate_queryset(queryset, page_size)
        except Http404:
            self.kwargs["page"] = "last"
            return super().paginate_queryset(queryset, page_size)
