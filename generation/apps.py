from django.apps import AppConfig


class GenerationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "generation"
    verbose_name = "Datasets and generation"

    def ready(self) -> None:
        # Imported for their side effects: the site-wide rate limits' deploy check (mwe_site is not
        # an app, so nothing else imports the module before `check` collects its checks), and the
        # task that runs jobs, registered in every process that loads Django. The job machinery
        # sends that task by name (RUN_JOB_TASK); a process that has it runs it inline when
        # CELERY_TASK_ALWAYS_EAGER is set.
        import generation.jobs.tasks  # noqa: F401
        import mwe_site.throttling  # noqa: F401
        from generation.catalog.jobs import import_job_cleanup, import_job_run
        from generation.evaluation.jobs import evaluation_job_run, suite_job_run
        from generation.jobs.services import job_handler_register
        from generation.models import Job
        from generation.pipeline.jobs import generation_job_run

        # The job kinds this app owns (analysis.apps registers the explorer's), each handled by the
        # part that owns the work, so that the job machinery imports none of them.
        job_handler_register(kind=Job.Kind.IMPORT, handler=import_job_run, cleanup=import_job_cleanup)
        job_handler_register(kind=Job.Kind.EVALUATE, handler=evaluation_job_run)
        job_handler_register(kind=Job.Kind.SUITE, handler=suite_job_run)
        job_handler_register(kind=Job.Kind.GENERATE, handler=generation_job_run)
