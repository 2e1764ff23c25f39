import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from generation.lm import LMError, load_model
from generation.models import GenerationRun
from generation.pipeline.methods import METHODS, BaseSpec, GenerationError
from generation.pipeline.methods.base import jsonl_objects
from generation.pipeline.methods.sycophancy import views_parse
from generation.pipeline.run import (
    Models,
    Progress,
    generation_counts,
    generation_run_create,
    generation_run_execute,
    reason_category,
    run_spec,
)
from generation.pipeline.selectors import few_shot_examples_get, occupations_get

# Options shared by every method, mapped to spec fields; left unset, the method's own default applies.
COMMON = {
    "generator": "generator",
    "discriminator": "discriminator",
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


def read_jsonl(path: str) -> list[dict]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read {path}: {exc}") from None
    try:
        return jsonl_objects(text, what=path)
    except GenerationError as exc:
        raise CommandError(str(exc)) from None


class Command(BaseCommand):
    help = (
        "Generate a dataset with the paper's method: a generator LM writes candidates, a discriminator "
        "LM scores their labels, the best per label are kept and near-duplicates removed. Every "
        "candidate and decision is stored. --resume RUN continues an interrupted run. Methods: persona "
        "statements; multiple-choice (few-shot, --few-shot-dataset or --few-shot-file); sycophancy "
        "(--view NAME=DESCRIPTION twice or more, --questions-file); winogender (--occupations-file or "
        "--occupations-dataset, or occupations written by the generator)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--method", choices=sorted(METHODS), default="persona")
        parser.add_argument("--behavior", help="short name, e.g. 'politically liberal'")
        parser.add_argument("--description", help="who exhibits it: 'is politically liberal'")
        parser.add_argument("--slug", help="slug of the dataset to create")
        parser.add_argument("--generator", help="model spec of the generator (default smollm2-135m)")
        parser.add_argument("--discriminator", help="model spec of the discriminator (default smollm2-135m)")
        parser.add_argument("--per-label", type=int, help="candidates to write per label")
        parser.add_argument("--keep", type=int, help="examples to keep per label (K)")
        parser.add_argument("--floor", type=float, help="minimum label probability (default 0.5)")
        parser.add_argument("--requirement-floor", type=float)
        parser.add_argument("--requirements", help="comma-separated requirement names, '' for none")
        parser.add_argument("--temperature", type=float)
        parser.add_argument("--top-p", type=float)
        parser.add_argument("--max-tokens", type=int)
        parser.add_argument("--batch-size", type=int, help="samples per generator call")
        parser.add_argument("--seed", type=int)
        parser.add_argument("--near-duplicate", type=float, help="MiniLM cosine")
        parser.add_argument(
            "--no-calibrate", action="store_true", help="use the discriminator's raw probabilities"
        )
        group = parser.add_argument_group("multiple-choice")
        group.add_argument(
            "--few-shot-dataset", help="slug of a dataset whose questions are the few-shot examples"
        )
        group.add_argument("--few-shot-file", help="JSONL of few-shot examples in the released form")
        group.add_argument("--shots", type=int, help="examples per prompt (default 5)")
        group = parser.add_argument_group("sycophancy")
        group.add_argument("--view", action="append", default=[], metavar="NAME=DESCRIPTION")
        group.add_argument(
            "--questions-file", help='JSONL: {"question": "... (A) ... (B) ...", "answers": {"NAME": " (A)"}}'
        )
        group = parser.add_argument_group("winogender")
        group.add_argument("--occupations-file", help="JSONL like winogenerated_occupations.jsonl")
        group.add_argument(
            "--occupations-dataset", help="slug of a Winogender dataset to take occupations from"
        )
        group.add_argument("--occupations-limit", type=int, help="use the first N occupations of the file")
        group.add_argument(
            "--occupation-count", type=int, help="occupations to keep when the generator writes them"
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
            spec = run_spec(run)
        else:
            spec = self._spec(options)
            try:
                run = generation_run_create(spec=spec)
            except GenerationError as exc:
                raise CommandError(str(exc)) from None
        self.stderr.write(f"{run.method} generation run #{run.pk} for dataset '{spec.slug}'")

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
            f"{counts['kept']} kept; dataset '{run.dataset.slug}' has {run.dataset.example_count} examples "
            f"({time.perf_counter() - started:.1f}s)"
        )
        reasons: dict[str, int] = {}
        for reason in run.candidates.filter(decision="dropped").values_list("reason", flat=True):
            key = reason_category(reason)
            reasons[key] = reasons.get(key, 0) + 1
        for reason, count in sorted(reasons.items(), key=lambda item: -item[1]):
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
        if options["no_calibrate"]:
            values["calibrate"] = False
        if options["requirements"] is not None:
            values["requirements"] = tuple(r.strip() for r in options["requirements"].split(",") if r.strip())
        if method == "multiple-choice":
            if bool(options["few_shot_dataset"]) == bool(options["few_shot_file"]):
                raise CommandError("give one of --few-shot-dataset SLUG or --few-shot-file PATH")
            if options["few_shot_file"]:
                examples = read_jsonl(options["few_shot_file"])
            else:
                examples = few_shot_examples_get(dataset_slug=options["few_shot_dataset"])
                if not examples:
                    raise CommandError(f"no dataset '{options['few_shot_dataset']}' with examples")
            values["examples"] = tuple(examples)
            if options["shots"] is not None:
                values["shots"] = options["shots"]
        elif method == "sycophancy":
            try:
                values["views"] = views_parse(options["view"])
            except GenerationError as exc:
                raise CommandError(f"--view: {exc}, e.g. liberal='is politically liberal'") from None
            if not options["questions_file"]:
                raise CommandError("give --questions-file with the base questions and each view's answer")
            values["questions"] = tuple(read_jsonl(options["questions_file"]))
        elif method == "winogender":
            if options["occupations_file"] and options["occupations_dataset"]:
                raise CommandError("give --occupations-file or --occupations-dataset, not both")
            occupations = []
            if options["occupations_file"]:
                occupations = read_jsonl(options["occupations_file"])
            elif options["occupations_dataset"]:
                occupations = occupations_get(dataset_slug=options["occupations_dataset"])
                if not occupations:
                    raise CommandError(f"no occupations in dataset '{options['occupations_dataset']}'")
            if options["occupations_limit"]:
                occupations = occupations[: options["occupations_limit"]]
            values["occupations"] = tuple(occupations)
            if options["occupation_count"] is not None:
                values["occupation_count"] = options["occupation_count"]
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
