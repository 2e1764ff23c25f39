from django.apps import AppConfig


class AnnotationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "annotation"
    verbose_name = "Crowdworker annotation"

    def ready(self) -> None:
        from django.conf import settings
        from django.db.models.signals import m2m_changed, post_delete, post_save
        from rest_framework.authtoken.models import Token

        from annotation import hotpath, log_redaction
        from annotation.models import AnnotationProject, Worker

        log_redaction.install()

        # The API's per-process caches (annotation.hotpath) forget what a write here changes.
        token, user, worker = hotpath.drop_cached_token, hotpath.drop_cached_user, hotpath.drop_cached_worker
        post_delete.connect(token, sender=Token, dispatch_uid="annotation_token_cache_token")
        post_save.connect(token, sender=Token, dispatch_uid="annotation_token_cache_token_save")
        post_save.connect(user, sender=settings.AUTH_USER_MODEL, dispatch_uid="annotation_token_cache_user")
        post_delete.connect(
            user, sender=settings.AUTH_USER_MODEL, dispatch_uid="annotation_token_cache_user_d"
        )
        post_save.connect(worker, sender=Worker, dispatch_uid="annotation_token_cache_worker")
        projects = hotpath.project_cache.clear
        post_save.connect(projects, sender=AnnotationProject, dispatch_uid="annotation_project_cache")
        post_delete.connect(projects, sender=AnnotationProject, dispatch_uid="annotation_project_cache_d")
        post_save.connect(projects, sender=Worker, dispatch_uid="annotation_project_cache_worker")
        m2m_changed.connect(
            projects, sender=Worker.projects.through, dispatch_uid="annotation_project_cache_m2m"
        )
