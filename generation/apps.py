from django.apps import AppConfig


class GenerationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "generation"
    verbose_name = "Datasets and generation"

    def ready(self) -> None:
        # The site-wide rate limits' deploy check (mwe_site is not an app, so nothing else imports
        # the module before `check` collects its checks).
        import mwe_site.throttling  # noqa: F401
