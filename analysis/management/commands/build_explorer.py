from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from analysis.explorer.builds import explorer_maps_build
from analysis.explorer.errors import ExplorerError
from analysis.explorer.jobs import explorer_job_create, summary_model_spec
from analysis.explorer.projection import DEFAULT_MIN_DIST, DEFAULT_N_NEIGHBORS, DEFAULT_SEED, MapParams
from generation.lm import LMError, ModelSpecError, load_model, parse_model_spec


class Command(BaseCommand):
    help = (
        "Build the explorer's maps: embed every example with MiniLM (cached: only new texts reach the "
        "model), project with UMAP (cosine, fixed seed), cluster and label the clusters. With no "
        "options: the global map and one map per dataset. Maps whose inputs did not change are skipped "
        "unless --force."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--datasets", nargs="+", metavar="SLUG", help="build these datasets' maps (not the global one)"
        )
        parser.add_argument(
            "--global",
            dest="global_map",
            action="store_true",
            help="build the global map (alone, or with the maps of --datasets)",
        )
        parser.add_argument("--no-summaries", action="store_true", help="keywords only, no LM summaries")
        parser.add_argument(
            "--summary-model",
            metavar="SPEC",
            help="model spec that writes cluster summaries (default: MWE_EXPLORER_SUMMARY_MODEL; none if unset)",
        )
        parser.add_argument("--force", action="store_true", help="rebuild maps whose inputs did not change")
        parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
        parser.add_argument("--n-neighbors", type=int, default=DEFAULT_N_NEIGHBORS)
        parser.add_argument("--min-dist", type=float, default=DEFAULT_MIN_DIST)
        parser.add_argument("--min-cluster-size", type=int, help="default: about 1%% of the points, 5 to 500")
        parser.add_argument(
            "--background", action="store_true", help="queue the build as a job for the worker and return"
        )

    def handle(self, *args, **options):
        datasets = options["datasets"]
        include_global = options["global_map"] or not datasets
        include_datasets = bool(datasets) or not options["global_map"]
        spec = "" if options["no_summaries"] else (options["summary_model"] or summary_model_spec())
        try:
            params = MapParams(
                n_neighbors=options["n_neighbors"],
                min_dist=options["min_dist"],
                seed=options["seed"],
                min_cluster_size=options["min_cluster_size"],
            )
            if spec:
                parse_model_spec(spec)
        except (ExplorerError, ModelSpecError) as exc:
            raise CommandError(str(exc)) from None

        if options["background"]:
            if params != MapParams() or options["summary_model"]:
                raise CommandError("--background builds with the default parameters and summary model")
            try:
                job = explorer_job_create(
                    created_by=None,
                    datasets=datasets,
                    include_global=include_global,
                    include_datasets=include_datasets,
                    summaries=not options["no_summaries"],
                    force=options["force"],
                )
            except ExplorerError as exc:
                raise CommandError(str(exc)) from None
            self.stdout.write(f"explorer build queued as job #{job.pk} ({job.status})")
            return

        from generation.lm.embeddings import load_embedder

        embedder = load_embedder()
        summary_model = None
        if spec:
            try:
                summary_model = load_model(spec)
            except LMError as exc:
                raise CommandError(f"cannot load the summary model {spec}: {exc}") from None
        bars: dict[str, tqdm] = {}
        units = {"embedding": "text", "mapping": "map"}

        def report(stage: str, done: int, total: int) -> None:
            bar = bars.get(stage)
            if bar is None:
                bar = bars[stage] = tqdm(total=total, desc=stage, unit=units.get(stage, "item"))
            bar.total = total
            bar.n = done
            bar.refresh()

        try:
            result = explorer_maps_build(
                embedder=embedder,
                datasets=datasets,
                include_global=include_global,
                include_datasets=include_datasets,
                summary_model=summary_model,
                params=params,
                force=options["force"],
                progress=report,
            )
        except ExplorerError as exc:
            raise CommandError(str(exc)) from None
        finally:
            for bar in bars.values():
                bar.close()
            if summary_model is not None:
                summary_model.close()
        for outcome in result.maps:
            build = f" (build #{outcome.build_id})" if outcome.build_id else ""
            self.stdout.write(f"{outcome.scope}: {outcome.status}{build}; {outcome.message}")
        self.stdout.write(result.summary())
        if result.failed:
            raise CommandError(f"{len(result.failed)} map(s) failed")
