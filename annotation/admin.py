from django.contrib import admin

from annotation.models import AnnotationProject, Assignment, ProjectItem, Response, Worker


@admin.register(AnnotationProject)
class AnnotationProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "overlap", "lease_seconds", "gold_rate", "is_active", "created_at"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["datasets"]


@admin.register(Worker)
class WorkerAdmin(admin.ModelAdmin):
    list_display = ["pk", "external_id", "user", "excluded", "created_at"]
    list_filter = ["excluded"]
    search_fields = ["external_id"]
    readonly_fields = ["invite_token"]

    def has_delete_permission(self, request, obj=None) -> bool:
        # Workers are excluded, never deleted: their responses stay attributable.
        return False


@admin.register(ProjectItem)
class ProjectItemAdmin(admin.ModelAdmin):
    list_display = ["pk", "project", "example", "is_gold", "reserved_count", "submitted_count"]
    list_filter = ["project", "is_gold"]
    raw_id_fields = ["example"]
    # The counters are written only by annotation.services, in the transaction of the lease.
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

    # Leases and responses are written only by annotation.services, which keeps the item counters
    # and the invariants (at most k responses, one per worker) with them; the admin only reads them.
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Response)
class ResponseAdmin(admin.ModelAdmin):
    list_display = ["pk", "project", "item", "worker", "relevance", "label_correct", "ambiguous"]
    list_filter = ["project"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
