"""Who may see what, the rules every app's views share."""

from django.contrib.auth.mixins import UserPassesTestMixin


class StaffRequiredMixin(UserPassesTestMixin):
    """Researchers' pages: staff only; others are sent to log in (or get 403 once logged in)."""

    def test_func(self) -> bool:
        return self.request.user.is_active and self.request.user.is_staff
