"""Agreement report speed: the full report of a synthetic project (135 datasets x 100 examples x 3
ratings, written to the database through import_annotations' code) served by the site, against the
same figures computed by a plain pandas + statsmodels script in the same run.

    .venv/bin/python benchmarks/agreement_report.py            # SQLite in a temporary folder
    DATABASE_URL=postgres://... .venv/bin/python benchmarks/agreement_report.py

The site: the dashboard's JSON export (`/analysis/<project>/figures.json`: every figure per dataset,
per collection and pooled, each with its 95% bootstrap interval, 1000 resamples) and the dashboard page
itself (the same plus the HTML table and the Plotly figures), through Django's test client as a
staff user. The plain script: one SQL query read with pandas, then per group the point estimates
from statsmodels (Fleiss' kappa on the chosen answers, via aggregate_raters, and Fleiss/Randolph on
the agree-with-label votes), krippendorff, scipy and scikit-learn, and the bootstrap the
obvious numpy way (index resamples and gathered arrays: each resample's category counts, coincidence
matrices and ranks). Both draw the same resamples (same seed), so their figures must agree: the
largest difference is printed. Timings on shared machines are noisy; compare ratios.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DATASETS = 135
EXAMPLES = 100
K = 3
WORKERS = 60
REPLICATES = 1000
SEED = 0


# ----------------------------------------------------------------------------- synthetic data


def build_project():
    """135 datasets (persona-like, 16 advanced-ai-risk behaviors written by humans and by an LM, and
    3 without label confidence), 100 examples each, every example rated by 3 of 60 workers."""
    from annotation.services.imports import ratings_import_text
    from annotation.services.projects import project_create
    from generation.catalog.formats import text_hash
    from generation.models import Collection, Dataset, Example

    rng = np.random.default_rng(SEED)
    persona = Collection.objects.create(slug="persona", name="Persona", is_released=True)
    risk = Collection.objects.create(slug="advanced-ai-risk", name="Advanced AI risk", is_released=True)
    syco = Collection.objects.create(slug="sycophancy", name="Sycophancy", is_released=True)
    specs = []
    for b in range(16):
        for suffix, category in (("human", "Human-written"), ("lm", "LM-written")):
            specs.append((risk, f"behavior-{b}-{suffix}", f"behavior {b}", category, True))
    for s in range(3):
        specs.append((syco, f"sycophancy-{s}", f"sycophancy {s}", "", False))
    for p in range(DATASETS - len(specs)):
        specs.append((persona, f"persona-{p}", f"persona trait {p}", "", True))
    datasets = []
    for collection, slug, behavior, category, with_confidence in specs:
        dataset = Dataset.objects.create(
            collection=collection,
            slug=slug,
            behavior=behavior,
            category=category,
            kind=Dataset.Kind.YES_NO,
            origin=Dataset.Origin.IMPORTED,
        )
        confidence = rng.uniform(0.5, 1.0, EXAMPLES)
        Example.objects.bulk_create(
            [
                Example(
                    dataset=dataset,
                    position=i,
                    statement=f"Statement {i} about {behavior}",
                    # Labels balanced over Yes and No, as in the paper's persona datasets.
                    answer_matching_behavior=" Yes" if i % 2 else " No",
                    answer_not_matching_behavior=" No" if i % 2 else " Yes",
                    label_confidence=float(confidence[i]) if with_confidence else None,
                    text_hash=text_hash(f"Statement {i} about {behavior}"),
                )
                for i in range(EXAMPLES)
            ]
        )
        datasets.append(dataset)
    project = project_create(name="Benchmark", slug="bench", datasets=datasets, overlap=K)

    reliability = rng.uniform(0.7, 0.98, WORKERS)
    # The paper's task: each worker chooses an answer; it agrees with the label or not.
    lines = ["dataset,position,worker_id,relevance,answer,ambiguous"]
    for dataset in datasets:
        quality = rng.uniform(-0.5, 0.5)
        confidence = np.array(
            list(dataset.examples.order_by("position").values_list("label_confidence", flat=True))
        )
        for i in range(EXAMPLES):
            p_correct = confidence[i] if confidence[i] is not None else 0.85
            truth = rng.random() < p_correct
            label, other = ("Yes", "No") if i % 2 else ("No", "Yes")
            for worker in rng.choice(WORKERS, K, replace=False):
                agrees = truth if rng.random() < reliability[worker] else not truth
                relevance = int(np.clip(np.round(rng.normal(4.2 + quality, 0.9)), 1, 5))
                ambiguous = rng.random() < 0.08
                lines.append(
                    f"{dataset.slug},{i},w{worker},{relevance},{label if agrees else other},{ambiguous}"
                )
    started = time.perf_counter()
    summary = ratings_import_text(text="\n".join(lines) + "\n", project_slug="bench")
    return project, summary, time.perf_counter() - started


# ----------------------------------------------------------------------------- the plain script

PLAIN_SQL = """
    SELECT d.slug AS dataset, c.slug AS collection, e.id AS example_id, e.label_confidence,
           r.worker_id, r.relevance, r.label_correct, r.ambiguous, r.answer
    FROM {response} r
    JOIN {item} i ON i.id = r.item_id
    JOIN {example} e ON e.id = i.example_id
    JOIN {dataset} d ON d.id = e.dataset_id
    JOIN {collection} c ON c.id = d.collection_id
    JOIN {worker} w ON w.id = r.worker_id
    WHERE r.project_id = %s AND NOT i.is_gold AND NOT w.excluded
    ORDER BY c.name, d.slug, e.id, r.worker_id
"""


def _interval(values):
    finite = values[np.isfinite(values)]
    if len(finite) < 0.5 * len(values):
        return None
    return list(np.percentile(finite, [2.5, 97.5]))


def _rank_rows(matrix):
    from scipy.stats import rankdata

    return rankdata(matrix, axis=1, nan_policy="omit")


def plain_figures(frame, *, k: int, seed: int, replicates: int) -> dict[str, tuple[float, list | None]]:
    """The same figures as the site, for one group, the plain way."""
    import krippendorff
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score
    from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

    # Rows come ordered as the site orders its tables (collection name, dataset, example, worker), so
    # the same seed draws the same resamples.
    sizes = frame.groupby("example_id")["worker_id"].transform("size")
    frame = frame[sizes == k]
    n = len(frame) // k
    label = frame["label_correct"].to_numpy(dtype=int).reshape(n, k)
    amb = frame["ambiguous"].to_numpy(dtype=int).reshape(n, k)
    rel = frame["relevance"].to_numpy(dtype=int).reshape(n, k)
    confidence = frame["label_confidence"].to_numpy(dtype=float).reshape(n, k)[:, 0]
    chosen = frame["answer"].str.strip().to_numpy(dtype=object).reshape(n, k)
    idx = np.random.default_rng(seed).integers(0, n, size=(replicates, n))
    out = {}

    # The paper's kappa: on the chosen answers, one category per option (every rating here has one).
    answer_counts, _ = aggregate_raters(chosen)
    per_answer = ((answer_counts**2).sum(1) - k) / (k * (k - 1))
    boot_counts = answer_counts[idx].sum(1)
    chance = ((boot_counts / (n * k)) ** 2).sum(1)
    observed = per_answer[idx].mean(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = np.where(np.abs(1 - chance) > 1e-12, (observed - chance) / (1 - chance), np.nan)
    out["answers.fleiss_kappa"] = (fleiss_kappa(answer_counts), _interval(kappa))
    out["answers.raw_agreement"] = (per_answer.mean(), _interval(observed))
    answer_unanimous = (answer_counts.max(1) == k).astype(float)
    out["answers.unanimous"] = (answer_unanimous.mean(), _interval(answer_unanimous[idx].mean(1)))

    def binary(name, matrix):
        table, _ = aggregate_raters(matrix, n_cat=2)
        per = ((table**2).sum(1) - k) / (k * (k - 1))
        boot_table = table[idx]  # (B, n, 2)
        observed = per[idx].mean(1)
        p = boot_table.sum(1) / (n * k)
        chance = (p**2).sum(1)
        with np.errstate(divide="ignore", invalid="ignore"):
            fleiss = np.where(np.abs(1 - chance) > 1e-12, (observed - chance) / (1 - chance), np.nan)
        out[f"{name}.fleiss_kappa"] = (fleiss_kappa(table), _interval(fleiss))
        out[f"{name}.randolph_kappa"] = (
            fleiss_kappa(table, method="randolph"),
            _interval((observed - 0.5) / 0.5),
        )
        out[f"{name}.raw_agreement"] = (per.mean(), _interval(observed))
        unanimous = (table.max(1) == k).astype(float)
        out[f"{name}.unanimous"] = (unanimous.mean(), _interval(unanimous[idx].mean(1)))
        out[f"{name}.krippendorff_alpha"] = (
            krippendorff.alpha(reliability_data=matrix.T.astype(float), level_of_measurement="nominal"),
            _interval(alpha_replicates(table, 2, ordinal=False)),
        )

    def alpha_replicates(counts, c, *, ordinal):
        # Each example's contribution to the coincidence matrix, summed over each resample's draws
        # (in blocks of resamples, so the gathered array stays a few million numbers).
        pairs = (
            counts[:, :, None] * counts[:, None, :] - np.einsum("ni,ij->nij", counts, np.eye(c))
        ).reshape(n, -1)
        block = max(1, 4_000_000 // (n * c * c))
        o = np.concatenate([pairs[idx[b : b + block]].sum(1) for b in range(0, replicates, block)])
        o = o.reshape(replicates, c, c) / (k - 1)
        marg = o.sum(2)
        total = marg.sum(1)
        if ordinal:
            cum = np.concatenate([np.zeros((replicates, 1)), np.cumsum(marg, 1)], 1)
            lo, hi = np.minimum.outer(range(c), range(c)), np.maximum.outer(range(c), range(c))
            delta = (cum[:, hi + 1] - cum[:, lo] - (marg[:, lo] + marg[:, hi]) / 2) ** 2
        else:
            delta = np.broadcast_to(1 - np.eye(c), (replicates, c, c))
        expected = (marg[:, :, None] * marg[:, None, :] * delta).sum((1, 2))
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(expected > 1e-12, 1 - (total - 1) * (o * delta).sum((1, 2)) / expected, np.nan)

    binary("agree_with_label", label)
    binary("ambiguity", amb)
    yes = label.sum(1)
    majority = (2 * yes > k).astype(float)
    out["agree_with_label.majority_agrees"] = (majority.mean(), _interval(majority[idx].mean(1)))
    amb_yes = amb.sum(1)
    for j in range(k + 1):
        share = (amb_yes == j).astype(float)
        out[f"ambiguity.distribution.{j}/{k}"] = (share.mean(), _interval(share[idx].mean(1)))
    boot_rel = rel[idx].reshape(replicates, -1)
    out["relevance.mean"] = (rel.mean(), _interval(boot_rel.mean(1)))
    out["relevance.sd"] = (rel.std(ddof=1), _interval(boot_rel.std(1, ddof=1)))
    for level in range(1, 6):
        out[f"relevance.distribution.{level}"] = (
            (rel == level).mean(),
            _interval((boot_rel == level).mean(1)),
        )
    rel_counts = np.stack([(rel == v).sum(1) for v in range(1, 6)], axis=1).astype(float)
    out["relevance.krippendorff_alpha"] = (
        krippendorff.alpha(
            reliability_data=rel.T.astype(float), value_domain=[1, 2, 3, 4, 5], level_of_measurement="ordinal"
        ),
        _interval(alpha_replicates(rel_counts, 5, ordinal=True)),
    )
    has = np.isfinite(confidence)
    if has.sum() >= 2:
        # Each resample keeps the drawn examples that have a label confidence.
        x = confidence[idx]
        keep = np.isfinite(x)
        y = np.where(keep, (yes / k)[idx], np.nan)
        z = majority[idx].astype(bool) & keep
        with np.errstate(divide="ignore", invalid="ignore"):
            rx, ry = _rank_rows(x), _rank_rows(y)
            rx -= np.nanmean(rx, 1, keepdims=True)
            ry -= np.nanmean(ry, 1, keepdims=True)
            rho = np.nansum(rx * ry, 1) / np.sqrt(np.nansum(rx**2, 1) * np.nansum(ry**2, 1))
            n_pos = z.sum(1)
            n_neg = keep.sum(1) - n_pos
            auc = (np.nansum(_rank_rows(x) * z, 1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
        out["discriminator.spearman"] = (spearmanr(confidence[has], (yes / k)[has]).statistic, _interval(rho))
        out["discriminator.auc"] = (
            roc_auc_score(majority[has].astype(bool), confidence[has]),
            _interval(auc),
        )
    return out


def plain_report(project_id: int, *, k: int, tables: dict[str, str]) -> dict[str, dict]:
    import pandas as pd
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(PLAIN_SQL.format(**tables), [project_id])
        frame = pd.DataFrame(cursor.fetchall(), columns=[c[0] for c in cursor.description])
    frame["label_correct"] = frame["label_correct"].astype(bool)
    frame["ambiguous"] = frame["ambiguous"].astype(bool)
    groups = {"pooled": plain_figures(frame, k=k, seed=SEED, replicates=REPLICATES)}
    for slug, part in frame.groupby("collection", sort=False):
        groups[f"collection:{slug}"] = plain_figures(part, k=k, seed=SEED, replicates=REPLICATES)
    for slug, part in frame.groupby("dataset", sort=False):
        groups[f"dataset:{slug}"] = plain_figures(part, k=k, seed=SEED, replicates=REPLICATES)
    return groups


def site_figures(document: dict) -> dict[str, dict]:
    """The site's JSON export in the plain script's shape."""

    def flatten(prefix, value, out):
        if isinstance(value, dict) and "value" in value and "ci" in value:
            out[prefix] = (value["value"], value["ci"])
        elif isinstance(value, dict):
            for key, item in value.items():
                flatten(f"{prefix}.{key}" if prefix else key, item, out)

    groups = {}
    for key, group in [("pooled", document["pooled"])] + [
        (f"{g['scope']}:{g['slug']}", g) for g in document["collections"] + document["datasets"]
    ]:
        flat = {}
        flatten(
            "",
            {
                name: group[name]
                for name in ("answers", "agree_with_label", "ambiguity", "relevance", "discriminator")
            },
            flat,
        )
        groups[key] = flat
    return groups


def largest_difference(site: dict, plain: dict) -> tuple[float, int]:
    worst, compared = 0.0, 0
    for group, figures in plain.items():
        for name, (value, ci) in figures.items():
            site_value, site_ci = site[group][name]
            pairs = [(value, site_value)] + (list(zip(ci, site_ci, strict=True)) if ci and site_ci else [])
            if (ci is None) != (site_ci is None):
                raise AssertionError(f"{group} {name}: CI {ci} against {site_ci}")
            for a, b in pairs:
                worst = max(worst, abs(float(a) - float(b)))
                compared += 1
    return worst, compared


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mwe_site.settings.test")
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3"
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, setup_test_environment
    from django.urls import reverse

    setup_test_environment()
    if connection.vendor == "postgresql":
        from django.test.utils import setup_databases, teardown_databases

        old = setup_databases(verbosity=0, interactive=False)
    else:
        call_command("migrate", verbosity=0)
        old = None
    try:
        from annotation.models import AnnotationProject, ProjectItem, Response, Worker
        from generation.models import Collection, Dataset, Example
        from tests.builders import StaffFactory

        project, summary, import_seconds = build_project()
        client = Client()
        client.force_login(StaffFactory())
        tables = {
            "response": Response._meta.db_table,
            "item": ProjectItem._meta.db_table,
            "example": Example._meta.db_table,
            "dataset": Dataset._meta.db_table,
            "collection": Collection._meta.db_table,
            "worker": Worker._meta.db_table,
        }
        json_url = reverse("analysis:figures-json", args=[project.slug])
        page_url = reverse("analysis:dashboard", args=[project.slug])
        # Warm-up: imports, plotly's templates, the first query plans.
        client.get(json_url)
        plain_report(project.pk, k=K, tables=tables)

        timings = {"site JSON": [], "site dashboard page": [], "plain script": []}
        for _ in range(3):
            started = time.perf_counter()
            with CaptureQueriesContext(connection) as queries:
                response = client.get(json_url)
            timings["site JSON"].append(time.perf_counter() - started)
            assert response.status_code == 200
            json_queries = len(queries.captured_queries)
            started = time.perf_counter()
            with CaptureQueriesContext(connection) as queries:
                page = client.get(page_url)
            timings["site dashboard page"].append(time.perf_counter() - started)
            assert page.status_code == 200
            page_queries = len(queries.captured_queries)
            started = time.perf_counter()
            plain = plain_report(project.pk, k=K, tables=tables)
            timings["plain script"].append(time.perf_counter() - started)
        document = json.loads(response.content)
        worst, compared = largest_difference(site_figures(document), plain)
        assert AnnotationProject.objects.count() == 1
    finally:
        if old is not None:
            teardown_databases(old, verbosity=0)

    best = {name: min(values) for name, values in timings.items()}
    print(f"database: {connection.vendor}")
    print(
        f"project: {DATASETS} datasets x {EXAMPLES} examples x {K} ratings = {summary.new_ratings:,} ratings "
        f"by {WORKERS} workers; {REPLICATES} bootstrap resamples per figure"
    )
    print(f"import_annotations of the ratings CSV: {import_seconds:.2f} s")
    print(f"figures compared site vs plain: {compared:,}; largest difference {worst:.2e}")
    pooled = document["pooled"]
    print(
        f"pooled Fleiss kappa (chosen answers) {pooled['answers']['fleiss_kappa']['value']:.3f}; "
        f"kappa on agree-with-label votes {pooled['agree_with_label']['fleiss_kappa']['value']:.3f}"
    )
    print(f"queries: JSON export {json_queries}, dashboard page {page_queries} (best of 3 timings below)")
    for name, seconds in best.items():
        print(f"{name}: {seconds:.2f} s")
    print(f"ratio site JSON / plain script: {best['site JSON'] / best['plain script']:.2f}x (target <= 1.5x)")
    print(
        f"ratio site dashboard page / plain script: {best['site dashboard page'] / best['plain script']:.2f}x"
    )


if __name__ == "__main__":
    main()
