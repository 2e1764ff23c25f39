from django.apps import AppConfig


class AnalysisConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "analysis"
    verbose_name = "Agreement analysis"

    def ready(self) -> None:
        # The worker runs explorer builds through generation's job machinery, which does not import
        # this app; registering here makes the handler known in every process that loads Django.
        from analysis.explorer.jobs import explorer_job_run
        from generation.jobs.services import job_handler_register
        from generation.models import Job

        job_handler_register(kind=Job.Kind.EXPLORE, handler=explorer_job_run)
