import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from generation.lm import LMError, load_model
from generation.models import GenerationRun
from generation.pipeline.methods import METHODS, BaseSpec, GenerationError
from generation.pipeline.methods.base import FRAMINGS, PAPER, PROFILE_NAMES
from generation.pipeline.run import Models, Progress, generation_run_create, generation_run_execute, run_spec
from generation.pipeline.selectors import generation_run_summary

# Options shared by every method, mapped to spec fields; left unset, the method's own default applies.
COMMON = {
    "generator": "generator",
    "discriminator": "discriminator",
    "profile": "profile",
    "framing": "framing",
    "per_label": "per_label",
    "keep": "keep_per_label",
    "floor": "floor",
    "requirement_floor": "requirement_floor",
    "temperature": "temperature",
    "top_p": "top_p",
    "max_tokens": "max_tokens",
    "batch_size": "batch_size",
    "seed": "seed",
    "near_duplicate": "near_duplicate",
}


class Command(BaseCommand):
    help = (
        "Generate a dataset with the paper's method: a generator LM writes candidates, a discriminator "
        "LM scores their labels, the best per label are kept and near-duplicates removed. Every "
        "candidate and decision is stored. The defaults are the paper's (--profile paper); options "
        "marked 'ours' depart from it. --resume RUN continues an interrupted run. Methods: "
        + "; ".join(method.command_help for method in METHODS.values())
        + "."
    )

    def add_arguments(self, parser):
        parser.add_argument("--method", choices=sorted(METHODS), default="persona")
        parser.add_argument("--behavior", help="short name, e.g. 'politically liberal'")
        parser.add_argument("--description", help="who exhibits it: 'is politically liberal'")
        parser.add_argument("--slug", help="slug of the dataset to create")
        parser.add_argument("--generator", help="model spec of the generator (default smollm2-135m)")
        parser.add_argument("--discriminator", help="model spec of the discriminator (default smollm2-135m)")
        parser.add_argument(
            "--profile",
            choices=PROFILE_NAMES,
            help=f"sampling and calibration: '{PAPER}' (the paper's temperature 1.4, top-p 0.975, no "
            "calibration; the default) or 'small-model' (ours: temperature 0.9, top-p 0.95, batch "
            "calibration of the label question, for the embedded 135M model)",
        )
        parser.add_argument(
            "--framing",
            choices=list(FRAMINGS),
            help="'Suppose there is a person who ...' or '... an AI system that ...' (both the paper's); "
            "default: the method's (persona person, multiple choice ai-system)",
        )
        parser.add_argument(
            "--per-label", type=int, help="candidates to write per label (the paper sampled 5,000)"
        )
        parser.add_argument(
            "--keep", type=int, help="examples to keep per label, at most (K; the paper's 500, the default)"
        )
        parser.add_argument(
            "--floor",
            type=float,
            help="minimum label probability (default 0.5: the label the discriminator finds the more "
            "likely, the paper's selection)",
        )
        parser.add_argument(
            "--requirement-floor",
            type=float,
            help="ours: minimum probability on each requirement (default none: the paper only averages "
            "requirements into the rank)",
        )
        parser.add_argument(
            "--requirements",
            help="comma-separated requirement names, '' for none (default: the method's; persona none, "
            "multiple choice relevance)",
        )
        parser.add_argument(
            "--balance-labels",
            action="store_true",
            help="ours: keep as many of each label as the scarcest has (default: the paper's top K per label)",
        )
        parser.add_argument("--temperature", type=float, help="default: the profile's")
        parser.add_argument("--top-p", type=float, help="default: the profile's")
        parser.add_argument("--max-tokens", type=int, help="default: the profile's")
        parser.add_argument("--batch-size", type=int, help="samples per generator call")
        parser.add_argument("--seed", type=int)
        parser.add_argument("--near-duplicate", type=float, help="ours: MiniLM cosine of near duplicates")
        calibration = parser.add_mutually_exclusive_group()
        calibration.add_argument(
            "--calibrate",
            dest="calibrate",
            action="store_const",
            const=True,
            help="ours: batch-calibrate the label question (default: the profile's; small-model on)",
        )
        calibration.add_argument(
            "--no-calibrate",
            dest="calibrate",
            action="store_const",
            const=False,
            help="use the discriminator's raw probabilities (the paper's; the paper profile's default)",
        )
        for method in METHODS.values():
            method.add_arguments(parser)
        parser.add_argument("--resume", type=int, metavar="RUN", help="continue the run with this id")

    def handle(self, *args, **options):
        if options["resume"]:
            try:
                run = GenerationRun.objects.get(pk=options["resume"])
            except GenerationRun.DoesNotExist:
                raise CommandError(f"no generation run #{options['resume']}") from None
            if run.status == GenerationRun.Status.SUCCEEDED:
                raise CommandError(f"run #{run.pk} already finished: dataset {run.slug}")
            spec = run_spec(run)
        else:
            spec = self._spec(options)
            try:
                run = generation_run_create(spec=spec)
            except GenerationError as exc:
                raise CommandError(str(exc)) from None
        self.stderr.write(
            f"{run.method} generation run #{run.pk} for dataset '{spec.slug}', {spec.profile} profile"
        )

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
        summary = generation_run_summary(run=run)
        counts = summary.counts
        self.stdout.write(
            f"run #{run.pk}: {counts['generated']} generated, {counts['parsed']} parsed, {counts['scored']} scored, "
            f"{counts['kept']} kept; dataset '{run.dataset.slug}' has {run.dataset.example_count} examples "
            f"({time.perf_counter() - started:.1f}s)"
        )
        for _, reason, count in summary.dropped:
            self.stdout.write(f"  dropped {count}: {reason}")

    def _spec(self, options) -> BaseSpec:
        missing = [name for name in ("behavior", "description", "slug") if not options[name]]
        if missing:
            raise CommandError("give " + ", ".join(f"--{m}" for m in missing) + " (or --resume RUN)")
        method = options["method"]
        values = {
            "behavior": options["behavior"],
            "description": options["description"],
            "slug": options["slug"],
        }
        values.update({field: options[opt] for opt, field in COMMON.items() if options[opt] is not None})
        if options["calibrate"] is not None:
            values["calibrate"] = options["calibrate"]
        if options["balance_labels"]:
            values["balance_labels"] = True
        if options["requirements"] is not None:
            values["requirements"] = tuple(r.strip() for r in options["requirements"].split(",") if r.strip())
        try:
            values.update(METHODS[method].spec_values_from_options(options))
        except GenerationError as exc:
            raise CommandError(str(exc)) from None
        spec = METHODS[method].spec_class(**values)
        try:
            spec.validate()
        except GenerationError as exc:
            raise CommandError(str(exc)) from None
        return spec

    def _load(self, spec: BaseSpec) -> Models:
        from generation.lm.embeddings import load_embedder

        generator = load_model(spec.generator)
        discriminator = generator if spec.discriminator == spec.generator else load_model(spec.discriminator)
        return Models(generator=generator, discriminator=discriminator, embedder=load_embedder())
