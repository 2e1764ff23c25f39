"""manage.py agreement_report [--dataset SLUG] [--project SLUG] [--json] [--include-gold-failing]:
the agreement figures of the dashboard, printed: Fleiss' kappa on the chosen answers first (the
paper's), then the secondary figures on the agree-with-label votes."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from analysis.agreement import figures as agreement
from analysis.agreement import selectors
from analysis.agreement.figures import Figure, GroupFigures
from analysis.agreement.selectors import GroupReport, RatingOptions
from analysis.templatetags.agreement_figures import format_value
from annotation.models import AnnotationProject
from generation.models import Dataset


def _fig(figure: Figure, style: str = "decimal") -> str:
    if not figure.defined:
        return f"undefined ({figure.undefined})"
    text = format_value(figure.value, style)
    if figure.has_ci:
        return f"{text} [{format_value(figure.ci_low, style)}, {format_value(figure.ci_high, style)}]"
    return f"{text} (no CI: {figure.ci_undefined})"


def group_lines(group: GroupReport) -> list[str]:
    f: GroupFigures = group.figures
    title = {
        "pooled": "All datasets",
        "collection": f"Collection {group.name}",
        "dataset": f"Dataset {group.slug}",
    }
    left_out = "; ".join(f"{reason}: {n}" for reason, n in f.excluded.items())
    lines = [
        f"{title[group.scope]}: {f.examples} example(s) with {f.k} ratings, {f.workers} worker(s)"
        + (f" (left out: {left_out})" if left_out else "")
    ]
    if f.examples == 0:
        return lines
    answers = f.answers
    answer_left_out = "; ".join(f"{reason}: {n}" for reason, n in answers.excluded.items())
    lines += [
        f"  chosen answers ({answers.examples} example(s); options {', '.join(answers.options) or 'none'}"
        + (f"; left out of these figures only: {answer_left_out}" if answer_left_out else "")
        + "):",
        f"    Fleiss κ (chosen answers) {_fig(answers.fleiss_kappa)}",
        f"    raw agreement {_fig(answers.raw_agreement, 'percent')}; unanimous {_fig(answers.unanimous, 'percent')}",
        f"  agree with the label: majority chose the label's answer {_fig(f.majority_agrees, 'percent')}",
        f"    κ on agree-with-label votes {_fig(f.label.fleiss_kappa)}; Randolph κ {_fig(f.label.randolph_kappa)}",
        f"    raw agreement {_fig(f.label.raw_agreement, 'percent')}; unanimous {_fig(f.label.unanimous, 'percent')}",
        f"    Krippendorff α (nominal) {_fig(f.label.krippendorff_alpha)}",
        "  ambiguous: " + "; ".join(f"{key} {_fig(fig, 'percent')}" for key, fig in f.ambiguity_distribution),
        f"    Fleiss κ {_fig(f.ambiguity.fleiss_kappa)}; Randolph κ {_fig(f.ambiguity.randolph_kappa)}; "
        f"raw agreement {_fig(f.ambiguity.raw_agreement, 'percent')}",
        f"  relevance: mean {_fig(f.relevance_mean)}; sd {_fig(f.relevance_sd)}; "
        f"Krippendorff α (ordinal) {_fig(f.relevance_alpha)}",
        "    " + "; ".join(f"{level}: {_fig(fig, 'percent')}" for level, fig in f.relevance_distribution),
        f"  discriminator ({f.discriminator_examples} with a label confidence): "
        f"Spearman ρ {_fig(f.spearman)}; AUC {_fig(f.auc)}",
    ]
    return lines


def detail_lines(detail: selectors.GroupDetail) -> list[str]:
    ds = detail.dawid_skene
    if ds.undefined:
        return [f"  Dawid-Skene: undefined ({ds.undefined})"]
    lines = [
        f"  Dawid-Skene: label correct on {100 * ds.ds_correct_share:.1f}% (majority vote "
        f"{100 * ds.majority_correct_share:.1f}%); they differ on {ds.disagreements} example(s)"
        + (f", {ds.ties} majority tie(s)" if ds.ties else ""),
        "    worker reliability (Dawid-Skene accuracy, ratings), least reliable first:",
    ]
    for worker in sorted(ds.workers, key=lambda w: w.ds_accuracy)[:10]:
        name = detail.worker_names.get(worker.worker_id, str(worker.worker_id))
        lines.append(f"      {name}: {100 * worker.ds_accuracy:.1f}% ({worker.ratings})")
    if len(ds.workers) > 10:
        lines.append(f"      ... and {len(ds.workers) - 10} more")
    if detail.calibration:
        lines.append("  calibration (label confidence bin: examples, share of workers agreeing):")
        lines += [
            f"    {b.low:.1f}-{b.high:.1f}: {b.examples}, {100 * b.mean_agreement:.1f}%"
            for b in detail.calibration
        ]
    return lines


class Command(BaseCommand):
    help = (
        "Print the agreement figures of annotation projects: per dataset, per collection and pooled, with "
        "95% bootstrap intervals; undefined figures say why. Fleiss' κ (chosen answers) is the paper's: "
        "kappa on the answers the workers chose. The κ on agree-with-label votes is secondary: near 0 "
        "whenever nearly every vote agrees with the label (chance agreement near 1)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--project", help="the annotation project's slug (default: every project)")
        parser.add_argument("--dataset", help="only this dataset, with Dawid-Skene and calibration")
        parser.add_argument("--json", action="store_true", help="print JSON (the dashboard's export format)")
        parser.add_argument(
            "--include-gold-failing", action="store_true", help="keep workers who fail the gold checks"
        )
        parser.add_argument(
            "--include-excluded", action="store_true", help="keep workers a researcher excluded"
        )
        parser.add_argument(
            "--replicates", type=int, default=agreement.DEFAULT_REPLICATES, help="bootstrap resamples"
        )
        parser.add_argument("--seed", type=int, default=agreement.DEFAULT_SEED, help="bootstrap seed")

    def handle(self, *args, **options):
        if options["replicates"] < 1:
            raise CommandError("--replicates must be at least 1")
        rating_options = RatingOptions(
            include_gold_failing=options["include_gold_failing"],
            include_excluded=options["include_excluded"],
            replicates=options["replicates"],
            seed=options["seed"],
        )
        projects = AnnotationProject.objects.order_by("slug")
        if options["project"]:
            projects = projects.filter(slug=options["project"])
            if not projects:
                raise CommandError(f"no annotation project with the slug {options['project']!r}")
        dataset = None
        if options["dataset"]:
            dataset = Dataset.objects.select_related("collection").filter(slug=options["dataset"]).first()
            if dataset is None:
                raise CommandError(f"no dataset with the slug {options['dataset']!r}")
            projects = projects.filter(items__example__dataset=dataset, items__is_gold=False).distinct()
            if not projects:
                raise CommandError(
                    f"dataset {dataset.slug} has no items in {options['project'] or 'any project'}"
                )
        if not projects:
            raise CommandError("no annotation projects yet")

        documents = []
        for project in projects:
            if dataset is not None:
                ratings = selectors.project_ratings(project=project, options=rating_options, dataset=dataset)
                detail = selectors.group_detail(selectors.dataset_group(ratings, dataset), project=project)
                documents.append(
                    {"project": project.slug, "options": rating_options.as_dict(), **detail.as_dict()}
                )
                if not options["json"]:
                    self._header(project, rating_options, ratings.left_out_workers, ratings.left_out_ratings)
                    self._write(group_lines(detail.group) + detail_lines(detail))
                continue
            report = selectors.project_report(project=project, options=rating_options)
            documents.append(report.as_dict())
            if options["json"]:
                continue
            self._header(project, rating_options, report.left_out_workers, report.left_out_ratings)
            pooled_detail = selectors.group_detail(report.pooled, project=project)
            self._write(group_lines(report.pooled) + detail_lines(pooled_detail))
            for group in [*report.collections, *report.datasets]:
                self._write(group_lines(group))
            if report.comparisons:
                self._write(
                    [
                        "LM-written against human-written (relevance mean; majority chose the label's answer; "
                        "none ambiguous; Fleiss κ on chosen answers):"
                    ]
                )
                for comparison in report.comparisons:
                    for name, group in (("LM", comparison.lm), ("human", comparison.human)):
                        f = group.figures
                        self._write(
                            [
                                f"  {comparison.behavior} ({name}, {group.slug}): {_fig(f.relevance_mean)}; "
                                f"{_fig(f.majority_agrees, 'percent')}; {_fig(f.ambiguity_share(0), 'percent')}; "
                                f"{_fig(f.answers.fleiss_kappa)}"
                            ]
                        )
        if options["json"]:
            self.stdout.write(
                json.dumps({"projects": documents}, ensure_ascii=False, allow_nan=False, indent=1)
            )

    def _header(self, project, options: RatingOptions, left_out: dict[str, int], ratings: int) -> None:
        who = "; ".join(f"{n} worker(s) {reason}" for reason, n in left_out.items())
        self._write(
            [
                f"Project {project.slug} ({project.name}), k = {project.overlap}; 95% bootstrap intervals over "
                f"examples ({options.replicates} resamples, seed {options.seed})"
                + (f"; left out: {who} ({ratings} ratings)" if who else ""),
                "Fleiss κ (chosen answers) is the paper's agreement (categories: the answer options). The κ on "
                "agree-with-label votes is secondary: when nearly every vote agrees, its chance agreement is "
                "near 1 and it falls towards 0 even with near-perfect agreement.",
            ]
        )

    def _write(self, lines: list[str]) -> None:
        for line in lines:
            self.stdout.write(line)
