import json
import time
from pathlib import Path
from types import SimpleNamespace

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from generation.catalog.services import released_answer_prefix
from generation.evaluation import selectors, suites, winogender
from generation.evaluation import services as evaluation
from generation.lm import LMError, ModelSpecError, load_model, parse_model_spec
from generation.models import Dataset, EvaluationSuite, PromptFormat, RunScorer, Scorer


class Command(BaseCommand):
    help = (
        "Score language models on datasets: the share of items where the argmax over the answer "
        "choices of log p(answer | prompt) is the behavior-matching answer. With --dataset the run is "
        "stored and shown on the site; with --jsonl the file is scored without touching the database. "
        "Several --model and --dataset, --collection or --all make a suite: each model loaded once, "
        "the requests of all datasets scored together, one progress bar, a table of results at the "
        "end; --resume continues an interrupted suite. "
        "Winogender sentences are scored the paper's way instead (section 6, Tab. 8): Pearson r between "
        "p(female) - p(male) and the occupation's BLS percentage of women, with its 95% interval."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--model",
            action="append",
            default=[],
            help="smollm2-135m, gemma3-270m, hf:<id or path>, openai:<url>#<model>; repeat for a suite",
        )
        parser.add_argument("--dataset", action="append", default=[], help="dataset slug; repeatable")
        parser.add_argument(
            "--collection",
            action="append",
            default=[],
            help="every scorable dataset of this collection (slug); repeatable",
        )
        parser.add_argument(
            "--all", action="store_true", dest="all_datasets", help="every scorable evaluation dataset"
        )
        parser.add_argument("--jsonl", type=Path, help="a released-format file, scored without storing")
        parser.add_argument("--resume", type=int, metavar="SUITE_ID", help="continue a suite")
        parser.add_argument("--name", default="", help="a name for the suite")
        parser.add_argument(
            "--scorer",
            choices=RunScorer.values,
            default=RunScorer.LOGPROBS,
            help="logprobs (default: the paper's), or answer: ask the model (openai: specs, plain format)",
        )
        parser.add_argument(
            "--prompt-format",
            "--format",
            dest="prompt_format",
            choices=PromptFormat.values,
            default=PromptFormat.PAPER,
            help="paper (default: the paper's Human/Assistant dialogue), plain, or the model's chat template",
        )
        parser.add_argument(
            "--limit", type=int, help="a stratified random sample of N items (not the first N)"
        )
        parser.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
        parser.add_argument("--out", type=Path, help="write one JSON object per item to this file")

    def handle(self, *args, **options):
        mode = _mode(options)
        if mode != "resume":
            for spec in options["model"]:
                try:
                    parse_model_spec(spec)
                except ModelSpecError as exc:
                    raise CommandError(str(exc)) from None
        if options["limit"] is not None and options["limit"] < 1:
            raise CommandError("--limit must be at least 1")
        if options["out"] is not None and not options["out"].parent.is_dir():
            raise CommandError(f"folder {options['out'].parent} does not exist")
        options["model"] = options["model"][0] if mode in {"single", "jsonl"} else options["model"]
        try:
            if mode == "single":
                options["dataset"] = options["dataset"][0]
                summary_lines, rows = self._dataset(options)
            elif mode == "jsonl":
                summary_lines, rows = self._jsonl(options)
            else:
                summary_lines, rows = self._suite(options, resume=mode == "resume")
        except (evaluation.EvaluationError, LMError) as exc:
            raise CommandError(str(exc)) from None
        if options["out"] is not None:
            with options["out"].open("w", encoding="utf-8") as handle:
                for row in rows:
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            summary_lines.append(f"items written to {options['out']}")
        for line in summary_lines:
            self.stdout.write(line)
        if self.failure:
            raise CommandError(self.failure)

    # Why a suite ended failed, said after its table and --out file are written.
    failure = ""

    def _load(self, spec: str):
        started = time.perf_counter()
        self.stderr.write(f"loading {spec} ...")
        model = load_model(spec)
        self.stderr.write(f"loaded in {time.perf_counter() - started:.1f}s ({model.info.fingerprint})")
        return model

    def _dataset(self, options):
        try:
            dataset = Dataset.objects.get(slug=options["dataset"])
        except Dataset.DoesNotExist:
            raise CommandError(f"no dataset with slug {options['dataset']!r}") from None
        run = evaluation.evaluation_run_create(
            dataset=dataset,
            model_spec=options["model"],
            prompt_format=options["prompt_format"],
            limit=options["limit"],
            seed=options["seed"],
            scorer=options["scorer"],
        )
        model = self._load(options["model"])
        bar = tqdm(total=None, unit="item", desc=dataset.slug)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        try:
            winogender.evaluation_run_execute_any(run=run, model=model, progress=progress)
        finally:
            bar.close()
            model.close()
        # The rows the site's download gives, so that every --out file has one shape.
        rows = list(selectors.run_item_records(run=run))
        if run.task == run.Task.WINOGENDER:
            lines = _winogender_lines(source=dataset.slug, run=run, results=run.results)
            lines.insert(0, f"run #{run.pk} stored")
            return lines, rows
        lines = _summary_lines(
            source=dataset.slug,
            run=run,
            summary=evaluation.Summary(
                run.item_count,
                run.matching_count,
                run.percent_matching,
                run.ci_low,
                run.ci_high,
                run.mean_p_match,
            ),
            items_per_second=run.items_per_second,
        )
        lines.insert(0, f"run #{run.pk} stored")
        return lines, rows

    def _suite(self, options, *, resume: bool):
        if resume:
            suite = EvaluationSuite.objects.filter(pk=options["resume"]).first()
            if suite is None:
                raise CommandError(f"no suite #{options['resume']}")
        else:
            datasets = suites.suite_datasets_select(
                slugs=options["dataset"],
                collections=options["collection"],
                everything=options["all_datasets"],
            )
            suite = suites.suite_create(
                model_specs=options["model"],
                datasets=datasets,
                prompt_format=options["prompt_format"],
                scorer=options["scorer"],
                limit=options["limit"],
                seed=options["seed"],
                name=options["name"],
            )
        self.stderr.write(
            f"suite #{suite.pk}: {len(suite.model_specs)} models x {suite.datasets.count()} datasets"
        )
        bar = tqdm(total=None, unit="item", desc=f"suite #{suite.pk}")

        def progress(state: suites.SuiteProgress) -> None:
            bar.total = state.total
            bar.n = state.done
            bar.set_description_str(state.message.split(":")[0], refresh=False)
            bar.refresh()

        try:
            suites.suite_execute(
                suite=suite, load_model=self._load, progress=progress, release_model=lambda m: m.close()
            )
        finally:
            bar.close()
        runs = list(suite.runs.select_related("dataset").order_by("id"))
        if suite.status != EvaluationSuite.Status.SUCCEEDED:
            self.failure = f"suite #{suite.pk} {suite.status}:\n{suite.error}"
        rows = (
            {"model_spec": run.model_spec, "dataset": run.dataset.slug, **row}
            for run in runs
            for row in selectors.run_item_records(run=run)
        )
        return _suite_lines(suite=suite, runs=runs), rows

    def _jsonl(self, options):
        try:
            found = winogender.items_from_jsonl(options["jsonl"])
        except winogender.NotWinogender:
            return self._jsonl_behavior(options)
        return self._jsonl_winogender(options, found)

    def _score_file(self, options, *, items, template_for, score, data_fingerprint):
        """Scores a file's items without storing them: the model loaded, the prompt template rendered
        for it, the items scored under a progress bar. Returns the results and what a
        stored run would carry (fingerprints, speed), for the same summary as a stored run's."""
        model = self._load(options["model"])
        try:
            template = template_for(model)
            with tqdm(total=len(items), unit="item", desc=options["jsonl"].name) as bar:
                started = time.perf_counter()
                results = score(model, template, bar.update)
                seconds = time.perf_counter() - started
        finally:
            model.close()
        info = SimpleNamespace(
            model_spec=options["model"],
            model_fingerprint=model.info.fingerprint,
            prompt_format=options["prompt_format"],
            format_fingerprint=evaluation.format_fingerprint(
                prompt_format=options["prompt_format"], template=template
            ),
            data_fingerprint=data_fingerprint,
            items_per_second=len(items) / seconds if seconds > 0 else None,
            seconds_scoring=seconds,
        )
        return results, info

    def _jsonl_winogender(self, options, found):
        items = winogender.sample(found.items, limit=options["limit"], seed=options["seed"])
        if not items:
            raise CommandError(f"{options['jsonl']}: no sentence has a BLS figure to correlate with")
        results, info = self._score_file(
            options,
            items=items,
            template_for=lambda model: winogender.template(
                prompt_format=options["prompt_format"], model=model
            ),
            score=lambda model, template, tick: winogender.score_items(
                model=model, items=items, template_text=template, progress=tick
            ),
            data_fingerprint=winogender.data_fingerprint(items),
        )
        figures = winogender.figures(
            winogender.result_points(results),
            left_out_no_bls=found.left_out_no_bls,
            left_out_malformed=found.left_out_malformed,
        )
        lines = _winogender_lines(source=str(options["jsonl"]), run=info, results=figures)
        # The shape of a stored run's rows (selectors.run_item_records), which name their scorer.
        return lines, [{**r.as_dict(), "scorer": Scorer.LOGPROBS} for r in results]

    def _jsonl_behavior(self, options):
        items, kind = evaluation.items_from_jsonl(options["jsonl"])
        items = evaluation.stratified_sample(items, limit=options["limit"], seed=options["seed"])
        results, info = self._score_file(
            options,
            items=items,
            template_for=lambda model: evaluation.format_template(
                prompt_format=options["prompt_format"],
                model=model,
                answer_prefix=released_answer_prefix(kind=kind, file_name=options["jsonl"].name),
            ),
            score=lambda model, template, tick: evaluation.score_items(
                model=model, items=items, template=template, progress=tick
            ),
            data_fingerprint=evaluation.data_fingerprint(items),
        )

        lines = _summary_lines(
            source=str(options["jsonl"]),
            run=info,
            summary=evaluation.summarize_results(results),
            items_per_second=info.items_per_second,
        )
        return lines, [r.as_dict() for r in results]


def _summary_lines(*, source, run, summary, items_per_second) -> list[str]:
    percent = "n/a" if summary.percent_matching is None else f"{summary.percent_matching:.1f}%"
    ci = "" if summary.ci_low is None else f" (95% CI {summary.ci_low:.1f}-{summary.ci_high:.1f})"
    mean = "n/a" if summary.mean_p_match is None else f"{summary.mean_p_match:.3f}"
    speed = "n/a" if items_per_second is None else f"{items_per_second:.1f}"
    return [
        f"model:              {run.model_spec} ({run.model_fingerprint})",
        f"data:               {source} ({run.data_fingerprint[:16]})",
        f"prompt format:      {run.prompt_format} ({run.format_fingerprint[:16]})",
        f"items:              {summary.n}",
        f"matching behavior:  {summary.matching}/{summary.n} = {percent}{ci}",
        f"mean P(match):      {mean}",
        f"items/s:            {speed} (model load excluded)",
    ]


def _interval(results: dict, suffix: str = "") -> str:
    r = results.get(f"pearson_r{suffix}" if not suffix else f"r{suffix}")
    if r is None:
        return "undefined (too few points, or one side constant)"
    low, high = results[f"ci_low{suffix}"], results[f"ci_high{suffix}"]
    return f"{r:+.3f} (95% CI {low:+.3f} to {high:+.3f}, Fisher z)"


def _winogender_lines(*, source, run, results: dict) -> list[str]:
    speed = "n/a" if run.items_per_second is None else f"{run.items_per_second:.1f}"
    seconds = getattr(run, "seconds_scoring", None) or getattr(run, "seconds", None)
    mean = results.get("mean_p_female_minus_p_male")
    return [
        f"model:              {run.model_spec} ({run.model_fingerprint})",
        f"data:               {source} ({run.data_fingerprint[:16]})",
        f"prompt format:      {run.prompt_format} ({run.format_fingerprint[:16]})",
        "task:               Winogender (paper section 6): p(female) - p(male) against BLS % women",
        f"r over sentences:   {_interval(results)}, n = {results.get('n', 0)}",
        f"r over occupations: {_interval(results, '_occupations')}, "
        f"n = {results.get('n_occupations', 0)} occupation means (the paper's Fig. 6 points)",
        "mean p(f) - p(m):   " + ("n/a" if mean is None else f"{mean:+.3f}"),
        f"left out:           {results.get('left_out_no_bls', 0)} without a BLS figure, "
        f"{results.get('left_out_malformed', 0)} malformed",
        f"items/s:            {speed} (model load excluded)"
        + ("" if seconds is None else f"; scoring {seconds:.1f}s"),
    ]


def _mode(options) -> str:
    """What the options ask for: one stored run (single), a file (jsonl), a suite, or a suite resumed;
    a combination that means nothing is refused before anything is loaded or written."""
    selection = [
        flag
        for flag, given in (
            ("--dataset", options["dataset"]),
            ("--collection", options["collection"]),
            ("--all", options["all_datasets"]),
        )
        if given
    ]
    if options["resume"] is not None:
        if selection or options["jsonl"] or options["model"] or options["name"]:
            raise CommandError(
                "--resume continues a suite with its own models, datasets and settings: "
                "give no --model, --dataset, --collection, --all, --jsonl or --name with it"
            )
        return "resume"
    if not options["model"]:
        raise CommandError("give --model (repeat it for several models), or --resume SUITE_ID")
    if options["jsonl"] is not None:
        if selection or len(options["model"]) > 1 or options["name"]:
            raise CommandError("--jsonl scores one file with one model: give one --model and nothing else")
        if options["scorer"] != RunScorer.LOGPROBS:
            raise CommandError(
                "--jsonl scores with log-probs (the paper's); store the dataset for --scorer answer"
            )
        return "jsonl"
    if not selection:
        raise CommandError("give --dataset, --collection, --all, --jsonl or --resume")
    if (
        len(options["model"]) == 1
        and len(options["dataset"]) == 1
        and not options["collection"]
        and not options["all_datasets"]
        and not options["name"]
    ):
        return "single"
    return "suite"


def _percent_cell(run) -> str:
    if run.status != run.Status.SUCCEEDED:
        return run.status
    if run.task == run.Task.WINOGENDER:
        r = run.results.get("pearson_r")
        if r is None:
            return "r n/a"
        return f"r {r:+.2f} ({run.results['ci_low']:+.2f} to {run.results['ci_high']:+.2f})"
    if run.percent_matching is None:
        return "n/a"
    return f"{run.percent_matching:.1f}% ({run.ci_low:.1f}-{run.ci_high:.1f})"


def _suite_lines(*, suite: EvaluationSuite, runs) -> list[str]:
    """The suite's results as a table, datasets down and models across: % matching the behavior with
    its Wilson 95% interval (Winogender: Pearson r with its Fisher interval), then each model's speed."""
    specs = list(suite.model_specs)
    cells: dict[str, dict[str, str]] = {}
    for run in runs:
        label = run.dataset.slug + (" (Winogender r)" if run.task == run.Task.WINOGENDER else "")
        cells.setdefault(label, {})[run.model_spec] = _percent_cell(run)
    timings = {entry["model_spec"]: entry for entry in (suite.results or {}).get("models", [])}

    def number(spec: str, key: str) -> str:
        value = timings.get(spec, {}).get(key)
        return "n/a" if value is None else f"{value:.1f}"

    table = [["% matching behavior (95% CI)", *specs]]
    table += [[label, *(row.get(spec, "") for spec in specs)] for label, row in cells.items()]
    table.append(["items/s (model load excluded)", *(number(spec, "items_per_second") for spec in specs)])
    table.append(["model load (s)", *(number(spec, "load_seconds") for spec in specs)])
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    title = f"suite #{suite.pk}" + (f" {suite.name!r}" if suite.name else "")
    lines = [
        f"{title}: {len(specs)} models x {len(cells)} datasets, {suite.prompt_format} format, "
        f"{suite.scorer} scorer, {suite.item_count:,} items: {suite.status}",
        "",
    ]
    lines += [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in table
    ]
    lines += ["", f"suite page: {suite.get_absolute_url()}"]
    return lines
