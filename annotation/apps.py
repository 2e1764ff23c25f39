from django.apps import AppConfig


class AnnotationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "annotation"
    verbose_name = "Crowdworker annotation"

    def ready(self) -> None:
        from annotation import log_redaction

        log_redaction.install()
