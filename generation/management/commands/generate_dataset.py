import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from generation.generate import (
    GenerationError,
    Models,
    PersonaSpec,
    Progress,
    generation_counts,
    generation_run_create,
    generation_run_execute,
    reason_category,
)
from generation.lm import LMError, load_model
from generation.models import GenerationRun


class Command(BaseCommand):
    help = (
        "Generate a dataset with the paper's method: a generator LM writes candidates, a discriminator "
        "LM scores their labels, the best per label are kept and near-duplicates removed. Every "
        "candidate and decision is stored. --resume RUN continues an interrupted run."
    )

    def add_arguments(self, parser):
        defaults = PersonaSpec(behavior="", description="", slug="")
        parser.add_argument("--method", choices=[m.value for m in GenerationRun.Method], default="persona")
        parser.add_argument("--behavior", help="short name, e.g. 'politically liberal'")
        parser.add_argument("--description", help="who exhibits it: 'is politically liberal'")
        parser.add_argument("--slug", help="slug of the dataset to create")
        parser.add_argument("--generator", default=defaults.generator, help="model spec of the generator")
        parser.add_argument(
            "--discriminator", default=defaults.discriminator, help="model spec of the discriminator"
        )
        parser.add_argument(
            "--per-label", type=int, default=defaults.per_label, help="candidates to write per label"
        )
        parser.add_argument(
            "--keep", type=int, default=defaults.keep_per_label, help="examples to keep per label (K)"
        )
        parser.add_argument("--floor", type=float, default=defaults.floor, help="minimum label probability")
        parser.add_argument("--requirement-floor", type=float, default=defaults.requirement_floor)
        parser.add_argument("--temperature", type=float, default=defaults.temperature)
        parser.add_argument("--top-p", type=float, default=defaults.top_p)
        parser.add_argument("--max-tokens", type=int, default=defaults.max_tokens)
        parser.add_argument(
            "--batch-size", type=int, default=defaults.batch_size, help="samples per generator call"
        )
        parser.add_argument("--seed", type=int, default=defaults.seed)
        parser.add_argument(
            "--near-duplicate", type=float, default=defaults.near_duplicate, help="MiniLM cosine"
        )
        parser.add_argument(
            "--no-calibrate", action="store_true", help="use the discriminator's raw yes/no probabilities"
        )
        parser.add_argument("--resume", type=int, metavar="RUN", help="continue the run with this id")

    def handle(self, *args, **options):
        if options["resume"]:
            try:
                run = GenerationRun.objects.get(pk=options["resume"])
            except GenerationRun.DoesNotExist:
                raise CommandError(f"no generation run #{options['resume']}") from None
            if run.status == GenerationRun.Status.SUCCEEDED:
                raise CommandError(f"run #{run.pk} already finished: dataset {run.slug}")
            spec = PersonaSpec.from_dict(run.spec)
        else:
            missing = [name for name in ("behavior", "description", "slug") if not options[name]]
            if missing:
                raise CommandError("give " + ", ".join(f"--{m}" for m in missing) + " (or --resume RUN)")
            spec = PersonaSpec(
                behavior=options["behavior"],
                description=options["description"],
                slug=options["slug"],
                generator=options["generator"],
                discriminator=options["discriminator"],
                per_label=options["per_label"],
                keep_per_label=options["keep"],
                floor=options["floor"],
                requirement_floor=options["requirement_floor"],
                temperature=options["temperature"],
                top_p=options["top_p"],
                max_tokens=options["max_tokens"],
                batch_size=options["batch_size"],
                seed=options["seed"],
                near_duplicate=options["near_duplicate"],
                calibrate=not options["no_calibrate"],
            )
            try:
                run = generation_run_create(spec=spec)
            except GenerationError as exc:
                raise CommandError(str(exc)) from None
        self.stderr.write(f"generation run #{run.pk} for dataset '{spec.slug}'")

        models = self._load(spec)
        bars: dict[str, tqdm] = {}

        def report(stage: str, done: int, total: int) -> None:
            bar = bars.get(stage)
            if bar is None:
                bar = bars[stage] = tqdm(total=total, desc=stage, unit="candidate")
            bar.total = total
            bar.n = done
            bar.refresh()

        started = time.perf_counter()
        try:
            generation_run_execute(run=run, models=models, progress=Progress(report=report))
        except (GenerationError, LMError) as exc:
            raise CommandError(f"run #{run.pk} failed: {exc}; fix the cause and --resume {run.pk}") from None
        finally:
            for bar in bars.values():
                bar.close()
        counts = generation_counts(run=run)
        self.stdout.write(
            f"run #{run.pk}: {counts['generated']} generated, {counts['parsed']} parsed, {counts['scored']} scored, "
            f"{counts['kept']} kept in dataset '{run.dataset.slug}' ({time.perf_counter() - started:.1f}s)"
        )
        reasons: dict[str, int] = {}
        for reason in run.candidates.filter(decision="dropped").values_list("reason", flat=True):
            key = reason_category(reason)
            reasons[key] = reasons.get(key, 0) + 1
        for reason, count in sorted(reasons.items(), key=lambda item: -item[1]):
            self.stdout.write(f"  dropped {count}: {reason}")

    def _load(self, spec: PersonaSpec) -> Models:
        from generation.lm.embeddings import load_embedder

        generator = load_model(spec.generator)
        discriminator = generator if spec.discriminator == spec.generator else load_model(spec.discriminator)
        return Models(generator=generator, discriminator=discriminator, embedder=load_embedder())
