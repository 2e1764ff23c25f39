from django.contrib import admin, messages
from django.db import transaction
from django.http import HttpResponse
from django.utils import timezone

from annotation import selectors
from annotation.models import (
    AnnotationProject,
    Assignment,
    ProjectItem,
    ResearcherToken,
    Response,
    StudySession,
    Worker,
)
from annotation.services import workers
from mwe_site.safe_csv import csv_write


@admin.register(AnnotationProject)
class AnnotationProjectAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "slug",
        "overlap",
        "lease_seconds",
        "gold_rate",
        "is_active",
        "published_at",
        "created_at",
    ]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["datasets"]
    # Publishing closes the project and ends its leases: the project page's button or
    # `manage.py publish_project` do it (annotation.services.projects.project_publish).
    readonly_fields = ["published_at"]


@admin.register(Worker)
class WorkerAdmin(admin.ModelAdmin):
    list_display = ["pk", "external_id", "user", "excluded", "invite_expires_at", "created_at"]
    list_filter = ["excluded"]
    search_fields = ["external_id"]
    # The link's secret is not shown: "Rotate invite links" gives a new one (and ends the old one's
    # sessions), "Revoke invite links" cuts the worker off.
    exclude = ["invite_token"]
    readonly_fields = ["invite_expires_at"]
    actions = ["rotate_invites", "revoke_invites"]

    @admin.action(permissions=["change"], description="Rotate invite links (download the new ones as CSV)")
    def rotate_invites(self, request, queryset):
        base_url = request.build_absolute_uri("/")
        with transaction.atomic():
            rows = [
                selectors.worker_invite_row(
                    worker=workers.worker_invite_rotate(worker=worker), base_url=base_url
                )
                for worker in queryset.order_by("pk")
            ]
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="invite-links.csv"'
        response["Cache-Control"] = "no-store"
        csv_write(response, fieldnames=selectors.INVITE_FIELDS, rows=rows)
        return response

    @admin.action(permissions=["change"], description="Revoke invite links (sign the workers out)")
    def revoke_invites(self, request, queryset):
        with transaction.atomic():
            count = sum(
                1 for worker in queryset.order_by("pk") if workers.worker_invite_revoke(worker=worker)
            )
        self.message_user(
            request,
            f"Revoked the invite links of {count} worker(s): they are signed out and their API tokens are "
            "deleted; rotate a link to let a worker back in.",
            messages.SUCCESS,
        )

    def has_delete_permission(self, request, obj=None) -> bool:
        # Workers are excluded, never deleted: their responses stay attributable.
        return False


@admin.register(ProjectItem)
class ProjectItemAdmin(admin.ModelAdmin):
    list_display = ["pk", "project", "example", "is_gold", "reserved_count", "submitted_count"]
    list_filter = ["project", "is_gold"]
    raw_id_fields = ["example"]
    # The counters are written only by annotation.services.leases, in the transaction of the lease.
    readonly_fields = ["reserved_count", "submitted_count", "overlap"]

    def save_model(self, request, obj, form, change):
        # An item added by hand takes its project's overlap, as project_create gives every item.
        if not change:
            obj.overlap = obj.project.overlap
        super().save_model(request, obj, form, change)


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["pk", "project", "item", "worker", "status", "expires_at"]
    list_filter = ["status", "project"]
    raw_id_fields = ["item", "worker"]

    # Leases and responses are written only by annotation.services.leases, which keeps the item counters
    # and the invariants (at most k responses, one per worker) with them; the admin only reads them.
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(StudySession)
class StudySessionAdmin(admin.ModelAdmin):
    list_display = [
        "pk",
        "project",
        "worker",
        "platform",
        "study_id",
        "session_id",
        "started_at",
        "completed_at",
    ]
    list_filter = ["platform", "project"]
    search_fields = ["session_id", "study_id", "worker__external_id"]
    raw_id_fields = ["worker"]

    # Written by annotation.services.studies as participants arrive and finish; the payment report
    # counts them, so the admin only reads them.
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Response)
class ResponseAdmin(admin.ModelAdmin):
    list_display = ["pk", "project", "item", "worker", "relevance", "answer", "label_correct", "ambiguous"]
    list_filter = ["project"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ResearcherToken)
class ResearcherTokenAdmin(admin.ModelAdmin):
    """Who holds which researcher API token, and revoking them. No key is stored (only its hash), so
    none is shown; researchers make their tokens on /account/tokens/, where the key is shown once."""

    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "user__username", "prefix"]
    exclude = ["key_sha256"]
    actions = ["revoke_tokens"]

    @admin.action(permissions=["delete"], description="Revoke the selected tokens")
    def revoke_tokens(self, request, queryset):
        count = queryset.filter(revoked_at=None).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} token(s).", messages.SUCCESS)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
