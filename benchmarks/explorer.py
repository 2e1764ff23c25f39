"""The explorer at full-release scale (133,204 statements, all 135 persona datasets):

1. embedding throughput of our cached path (hash, cache lookup, MiniLM in chunks, cache writes)
   against a bare `SentenceTransformer.encode` of the same texts, in the same run (target >= 0.9x),
   and of a rebuild that finds everything in the cache;
2. UMAP time (cosine, fixed seed, as the build runs it) for 10k, 50k and 133k points, on synthetic
   384-dim vectors (135 clusters of unit vectors, like 135 datasets), and the clustering that follows;
3. in headless Chromium, for a 133,204-point map: time to first render and the payload's size
   (targets < 3 s and < 8 MB), and hover response time of our grid lookup against Plotly's own
   hover on the same points. Statements are synthetic, spliced from the released persona
   statements so that their length and words are realistic (a template grammar when the data is
   absent).

    .venv/bin/python benchmarks/explorer.py                       # everything (minutes on 2 cores)
    .venv/bin/python benchmarks/explorer.py --sizes 10000 --texts 500 --skip-browser

Timings on shared machines are noisy; the ratios are measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FULL_RELEASE = 133_204
DATASETS = 135


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mwe_site.settings.test")
    # The benchmark is one client making many requests: the public rate limits would refuse them.
    for scope in ("EXPLORER_MAP", "EXPLORER_POINT", "SEARCH", "SEMANTIC_SEARCH"):
        os.environ.setdefault(f"MWE_THROTTLE_{scope}", "1000000/minute")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    folder = tempfile.mkdtemp(prefix="mwe-bench-explorer-")
    os.environ["MWE_VAR_DIR"] = folder
    os.environ["DATABASE_URL"] = f"sqlite:///{folder}/bench.sqlite3"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def real_statements() -> list[str]:
    import json

    from django.conf import settings

    statements: list[str] = []
    for path in sorted(Path(settings.MWE_EVALS_DATA).glob("persona/*.jsonl")):
        with path.open(encoding="utf-8") as handle:
            statements.extend(json.loads(line).get("statement", "") for line in handle if line.strip())
    return [s for s in dict.fromkeys(statements) if s]


def synthetic_statements(count: int, *, seed: int = 0) -> list[str]:
    """Statements of realistic length and vocabulary, none repeated: the first half of one
    released statement joined to the second half of another."""
    rng = random.Random(seed)
    source = real_statements()
    if len(source) < 100:
        subjects = ["I", "People", "My goals", "Other people", "The world", "Rules"]
        verbs = ["should", "must", "would rather", "always try to", "never want to", "like to"]
        objects = ["acquire more power", "help others", "take big risks", "follow the rules", "be honest"]
        tails = ["whenever I can", "even if it costs me", "because it matters", "in every situation", ""]
        source = [f"{s} {v} {o} {t}".strip() for s in subjects for v in verbs for o in objects for t in tails]
    statements = []
    seen: set[str] = set()
    while len(statements) < count:
        a, b = rng.choice(source).split(), rng.choice(source).split()
        text = " ".join(a[: max(1, len(a) // 2)] + b[len(b) // 2 :])
        if text in seen:
            text = f"{text} ({len(statements)})"
        seen.add(text)
        statements.append(text)
    return statements


def synthetic_vectors(count: int, *, seed: int = 0):
    """Unit 384-dim vectors in DATASETS clusters of different spreads, like MiniLM embeddings of
    135 datasets (each about one behavior)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(DATASETS, 384)).astype(np.float32)
    members = rng.integers(0, DATASETS, size=count)
    spread = rng.uniform(0.4, 0.9, size=DATASETS).astype(np.float32)
    vectors = centres[members] + spread[members, None] * rng.normal(size=(count, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors, members


# ----------------------------------------------------------------------------- 1. embeddings


def bench_embeddings(texts_count: int, rounds: int) -> None:
    from analysis.explorer.embeddings import embeddings_get_or_create
    from analysis.models import TextEmbedding
    from generation.lm.embeddings import load_embedder

    source = real_statements() or synthetic_statements(texts_count)
    texts = random.Random(1).sample(source, min(texts_count, len(source)))
    embedder = load_embedder()
    embedder.embed(texts[:64])  # warm-up: first calls pay for allocation and thread start-up

    def bare() -> None:
        embedder.model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)

    def ours() -> None:
        TextEmbedding.objects.all().delete()
        _, stats = embeddings_get_or_create(texts=texts, embedder=embedder)
        assert stats.embedded == len(set(texts))

    # Alternated, so that load from other processes falls on both; wall time and this process's CPU
    # time (less sensitive to other processes on a shared machine), best of the rounds.
    timings: dict[str, list[tuple[float, float]]] = {"bare": [], "ours": []}
    for round_ in range(rounds):
        order = [("bare", bare), ("ours", ours)] if round_ % 2 == 0 else [("ours", ours), ("bare", bare)]
        for name, run in order:
            wall, cpu = time.perf_counter(), time.process_time()
            run()
            timings[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    started = time.perf_counter()
    _, stats = embeddings_get_or_create(texts=texts, embedder=embedder)
    cached = time.perf_counter() - started
    assert stats.embedded == 0
    n = len(texts)
    bare_wall, bare_cpu = (min(t[i] for t in timings["bare"]) for i in (0, 1))
    ours_wall, ours_cpu = (min(t[i] for t in timings["ours"]) for i in (0, 1))
    print(
        f"\n== Embedding {n:,} released persona statements (all-MiniLM-L6-v2, CPU, best of {rounds}, alternated)"
    )
    print(
        f"bare SentenceTransformer.encode: {bare_wall:7.2f} s wall ({n / bare_wall:6.1f} texts/s), {bare_cpu:7.2f} s CPU"
    )
    print(
        f"ours, empty cache (embed+store): {ours_wall:7.2f} s wall ({n / ours_wall:6.1f} texts/s), {ours_cpu:7.2f} s CPU"
    )
    print(
        f"ours, everything cached:         {cached:7.2f} s wall ({n / cached:,.0f} texts/s, zero model calls)"
    )
    print(
        f"throughput ratio ours / bare: {bare_wall / ours_wall:.2f}x by wall time, {bare_cpu / ours_cpu:.2f}x by CPU time "
        "(target >= 0.9x)"
    )
    print(
        f"the full release ({FULL_RELEASE:,} texts) at this rate: about {FULL_RELEASE / (n / ours_wall) / 60:.0f} min "
        f"the first time, {FULL_RELEASE / (n / cached):.1f} s from the cache"
    )


# ----------------------------------------------------------------------------- 2. UMAP


def bench_umap(sizes: list[int]):
    from analysis.explorer.projection import MapParams, clusters_find, min_cluster_size_for, project

    print("\n== UMAP (n_neighbors=15, min_dist=0.1, cosine, random_state=42 => single-threaded)")
    # numba compiles UMAP's and pynndescent's functions on first use in a process (nearest-neighbour
    # descent only runs above 4096 points); timed apart, so the sizes below compare like with like.
    started = time.perf_counter()
    project(vectors=synthetic_vectors(5000)[0], params=MapParams())
    print(
        f"first UMAP in a process (5,000 points, includes compiling numba code): {time.perf_counter() - started:.1f} s"
    )
    result = None
    for size in sizes:
        vectors, members = synthetic_vectors(size)
        started = time.perf_counter()
        coords, _ = project(vectors=vectors, params=MapParams())
        umap_seconds = time.perf_counter() - started
        started = time.perf_counter()
        labels, _ = clusters_find(coords=coords, min_cluster_size=min_cluster_size_for(size))
        cluster_seconds = time.perf_counter() - started
        print(
            f"{size:>8,} points: UMAP {umap_seconds:7.1f} s, HDBSCAN {cluster_seconds:6.1f} s "
            f"({labels.max() + 1} clusters, {(labels < 0).mean():.0%} unassigned)"
        )
        result = (coords, labels, members, vectors)
    return result


# ----------------------------------------------------------------------------- 3. the page


def build_big_map(count: int, umap_result):
    """A stored build of `count` synthetic points, made by the build's own functions (payload,
    clusters, keywords, medoids); only the embedding is skipped."""
    import numpy as np

    from analysis.explorer.payload import payload_cluster, payload_encode
    from analysis.explorer.points import Point
    from analysis.explorer.projection import (
        cluster_keywords,
        cluster_members_ranked,
        clusters_find,
        min_cluster_size_for,
    )
    from analysis.models import ExplorerBuild, ExplorerCluster
    from generation.models import Collection, Dataset

    if umap_result is not None and len(umap_result[0]) == count:
        coords, labels, members, vectors = umap_result
    else:
        # No UMAP of that size in this run: clusters of 2D points stand in for its layout.
        vectors, members = synthetic_vectors(count)
        rng = np.random.default_rng(3)
        centres = rng.normal(size=(DATASETS, 2)) * 12
        coords = (centres[members] + rng.normal(size=(count, 2))).astype(np.float32)
        labels, _ = clusters_find(coords=coords, min_cluster_size=min_cluster_size_for(count))
    collection = Collection.objects.create(slug="persona", name="Persona", is_released=True)
    datasets = [
        Dataset.objects.create(
            collection=collection,
            slug=f"synthetic-{i:03d}",
            behavior=f"synthetic behavior {i}",
            kind=Dataset.Kind.YES_NO,
            origin=Dataset.Origin.IMPORTED,
        )
        for i in range(DATASETS)
    ]
    texts = synthetic_statements(count)
    rng = random.Random(2)
    points = [
        Point(
            example_id=i + 1,
            dataset_id=datasets[int(members[i])].pk,
            position=i,
            text=texts[i],
            label=rng.choice(("Yes", "No")),
            confidence=rng.uniform(0.5, 1.0),
        )
        for i in range(count)
    ]
    started = time.perf_counter()
    keywords = cluster_keywords(texts=texts, labels=labels)
    keyword_seconds = time.perf_counter() - started
    build = ExplorerBuild.objects.create(
        scope=ExplorerBuild.Scope.GLOBAL, status=ExplorerBuild.Status.SUCCEEDED, point_count=count
    )
    clusters = []
    for number in sorted(keywords):
        medoid = int(cluster_members_ranked(vectors=vectors, members=np.flatnonzero(labels == number))[0])
        clusters.append(
            ExplorerCluster(
                build=build,
                number=number,
                size=int((labels == number).sum()),
                keywords=keywords[number],
                medoid_index=medoid,
                x=float(coords[medoid, 0]),
                y=float(coords[medoid, 1]),
            )
        )
    ExplorerCluster.objects.bulk_create(clusters)
    started = time.perf_counter()
    payload = payload_encode(
        build_id=build.pk,
        points=points,
        coords=coords,
        cluster_labels=labels,
        datasets=datasets,
        clusters=[payload_cluster(c) for c in clusters],
    )
    payload_seconds = time.perf_counter() - started
    from django.utils import timezone

    build.payload = payload
    build.payload_bytes = len(payload)
    build.finished_at = timezone.now()
    build.input_fingerprint = "bench"
    build.save()
    raw_text = sum(len(t.encode()) for t in texts)
    print(f"\n== A {count:,}-point map ({DATASETS} datasets, {len(clusters)} clusters)")
    print(f"c-TF-IDF keywords: {keyword_seconds:.1f} s; payload encoding: {payload_seconds:.1f} s")
    print(
        f"payload: {len(payload) / 1e6:.2f} MB gzip (target < 8 MB); texts alone are {raw_text / 1e6:.1f} MB raw; "
        f"{len(payload) / count:.1f} bytes per point"
    )
    return build


BASELINE_PAGE = """
<!doctype html><html><body style="margin:0">
<div id="plot" style="width:900px;height:800px"></div>
<script src="%(plotly)s"></script>
</body></html>
"""


def bench_browser(build, runs: int) -> None:
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.test.testcases import LiveServerThread
    from playwright.sync_api import sync_playwright

    from tests.browser import CHROMIUM, CHROMIUM_ARGS, browser_page

    server = LiveServerThread("127.0.0.1", StaticFilesHandler, connections_override={}, port=0)
    server.daemon = True
    server.start()
    server.is_ready.wait()
    if server.error:
        raise server.error
    base = f"http://127.0.0.1:{server.port}"
    rss = {"before serving": process_rss()}
    renders, transfers = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        # One load first, not timed: the server's first request imports and compiles what a running
        # site already has. Every timed load below is a new browser context, so nothing is cached.
        warm = browser.new_context()
        warm.new_page().goto(f"{base}/explore/")
        warm.close()
        for _ in range(runs):
            # A cold cache; the page records what the Content Security Policy refused.
            page = browser_page(browser, timeout_ms=120_000, viewport={"width": 1400, "height": 1000})
            context = page.context
            page.goto(f"{base}/explore/")
            page.wait_for_selector("#explorer[data-state=ready], #explorer[data-state=error]")
            if page.get_attribute("#explorer", "data-state") != "ready":
                raise SystemExit(f"the map did not draw: {page.inner_text('#explorer-message')}")
            if page.csp_violations or page.js_errors:
                raise SystemExit(f"refused by the policy: {page.csp_violations}; errors: {page.js_errors}")
            renders.append(page.evaluate("window.mweExplorer.stats.firstRenderMs"))
            transfers.append(
                page.evaluate(
                    "performance.getEntriesByType('resource').filter(e => e.name.includes('points.bin'))"
                    ".map(e => ({transfer: e.transferSize, body: e.decodedBodySize, ms: e.duration}))[0]"
                )
            )
            assert page.evaluate("window.mweExplorer.traceLength()") == build.point_count
            breakdown = page.evaluate(
                """() => {
                  const at = {};
                  const nav = performance.getEntriesByType('navigation')[0];
                  at['page received'] = nav.responseEnd;
                  for (const e of performance.getEntriesByType('resource')) {
                    if (e.name.endsWith('plotly-strict.min.js')) at['plotly.js received'] = e.responseEnd;
                  }
                  for (const m of performance.getEntriesByType('mark')) at[m.name.replace('explorer:', 'map ')] = m.startTime;
                  at['plotly.js run (DOMContentLoaded)'] = nav.domContentLoadedEventStart;
                  at['first render'] = window.mweExplorer.stats.firstRenderMs;
                  return Object.fromEntries(Object.entries(at).sort((a, b) => a[1] - b[1]));
                }"""
            )
            last = page
            if _ < runs - 1:
                context.close()
        rss["after the page loads"] = process_rss()
        drawn, sampled = points_drawn(last, build.point_count)
        hover, lookup, handler = measure_hover(last, build.point_count)
        baseline, baseline_handling = measure_plotly_hover(browser, base, build)
        browser.close()
    server.terminate()
    transfer = transfers[0]
    print(f"\n== Headless Chromium, {build.point_count:,} points, cold cache, {runs} loads")
    print(
        "breakdown of the last load (ms after navigation start): "
        + ", ".join(f"{name} {at:.0f}" for name, at in breakdown.items())
    )
    print(
        f"time to first render (navigation start -> map drawn): median {statistics.median(renders) / 1000:.2f} s, "
        f"all {', '.join(f'{r / 1000:.2f}' for r in renders)} s (target < 3 s)"
    )
    print(
        f"payload: {transfer['transfer'] / 1e6:.2f} MB on the wire, {transfer['body'] / 1e6:.2f} MB unpacked, "
        f"fetched in {transfer['ms']:.0f} ms (target < 8 MB)"
    )
    print(
        f"drawn: {drawn} of {sampled} sampled points have non-background pixels in the screenshot; "
        "no Content Security Policy violation, no script error"
    )
    print(
        "RSS of the serving process (web server thread and this script): "
        + ", ".join(f"{name} {value / 2**20:.0f} MiB" for name, value in rss.items())
    )
    print(
        f"hover, ours (grid lookup, own tooltip): handling (mousemove reaching the page -> tooltip shown) median "
        f"{statistics.median(handler):.2f} ms, p95 {percentile(handler, 95):.2f} ms, of which the lookup median "
        f"{statistics.median(lookup):.3f} ms; from the event's timestamp median {statistics.median(hover):.1f} ms, "
        f"p95 {percentile(hover, 95):.1f} ms ({len(hover)} moves)"
    )
    if baseline:
        print(
            f"hover, Plotly's own (hovermode 'closest', text labels, same points): handling -> plotly_hover median "
            f"{statistics.median(baseline_handling):.2f} ms, p95 {percentile(baseline_handling, 95):.2f} ms; from the "
            f"event's timestamp median {statistics.median(baseline):.1f} ms, p95 {percentile(baseline, 95):.1f} ms "
            f"({len(baseline)} hovers)"
        )
        print(
            f"ratio of handling time, Plotly / ours (median): "
            f"{statistics.median(baseline_handling) / statistics.median(handler):.1f}x"
        )


def process_rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def points_drawn(page, count: int, *, sample: int = 1000) -> tuple[int, int]:
    """How many of `sample` random points (among those on the screen) have non-background pixels
    where the page says they are: the map was drawn, not only handed to plotly."""
    from tests.pixels import drawn_at, screenshot

    page.evaluate("document.getElementById('explorer-map').scrollIntoView({block: 'start'})")
    page.mouse.move(1, 1)
    page.evaluate("document.getElementById('explorer-cluster-labels').style.visibility = 'hidden'")
    image = screenshot(page)
    page.evaluate("document.getElementById('explorer-cluster-labels').style.visibility = ''")
    rng = random.Random(7)
    box = page.locator("#explorer-map").bounding_box()
    drawn = checked = 0
    while checked < sample:
        point = page.evaluate(f"window.mweExplorer.pixelOf({rng.randrange(count)})")
        if not (
            box["x"] <= point["x"] < box["x"] + box["width"]
            and box["y"] <= point["y"] < box["y"] + box["height"]
        ):
            continue
        checked += 1
        drawn += drawn_at(image, point["x"], point["y"])
    return drawn, checked


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def hover_targets(page, count: int, moves: int):
    rng = random.Random(5)
    box = page.locator("#explorer-map").bounding_box()
    targets = []
    for _ in range(moves):
        if rng.random() < 0.7:
            point = page.evaluate(f"window.mweExplorer.pixelOf({rng.randrange(count)})")
            targets.append((point["x"], point["y"]))
        else:
            targets.append(
                (
                    box["x"] + rng.uniform(10, box["width"] - 10),
                    box["y"] + rng.uniform(10, box["height"] - 10),
                )
            )
    return targets


def measure_hover(page, count: int, moves: int = 150):
    page.evaluate(
        "for (const name of ['hoverMs', 'lookupMs', 'handlerMs']) window.mweExplorer.stats[name].length = 0"
    )
    for x, y in hover_targets(page, count, moves):
        page.mouse.move(x, y)
        page.wait_for_timeout(80)  # as for Plotly's hover below
    stats = page.evaluate("window.mweExplorer.stats")
    return stats["hoverMs"], stats["lookupMs"], stats["handlerMs"]


def measure_plotly_hover(browser, base, build, moves: int = 120):
    """Plotly's own hover on the same points (hovermode 'closest', the statement as hover text, as a
    page would show it): the baseline our lookup replaces. Timed the same way as ours, from the
    browser's event time to Plotly's plotly_hover event."""
    from django.conf import settings

    context = browser.new_context(viewport={"width": 1000, "height": 900})
    page = context.new_page()
    page.goto(f"{base}/explore/")  # same origin, so the payload can be fetched
    page.set_content(BASELINE_PAGE % {"plotly": f"{base}/{settings.STATIC_URL}plotly/plotly-strict.min.js"})
    page.wait_for_function("typeof Plotly !== 'undefined'")
    ok = page.evaluate(
        """async (url) => {
          const buffer = await (await fetch(url)).arrayBuffer();
          const view = new DataView(buffer);
          const headerLength = view.getUint32(8, true);
          const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 12, headerLength)));
          const start = 12 + headerLength;
          const entry = (name) => header.arrays.find(a => a.name === name);
          const get = (name, Type) => new Type(buffer, start + entry(name).offset, entry(name).length);
          const x = get('x', Float32Array), y = get('y', Float32Array);
          const offsets = get('text_offsets', Uint32Array), bytes = get('text', Uint8Array);
          const decoder = new TextDecoder();
          const text = Array.from({length: x.length}, (_, i) => decoder.decode(bytes.subarray(offsets[i], offsets[i + 1])));
          window.__times = []; window.__handling = []; window.__event = 0; window.__reached = 0;
          document.addEventListener('mousemove', (e) => {
              window.__event = e.timeStamp; window.__reached = performance.now(); }, true);
          const gd = document.getElementById('plot');
          await Plotly.newPlot(gd, [{type: 'scattergl', mode: 'markers', x: x, y: y, text: text,
              marker: {size: 3}, hoverinfo: 'text'}],
              {hovermode: 'closest', margin: {l: 0, r: 0, t: 0, b: 0}, xaxis: {visible: false},
               yaxis: {visible: false}});
          gd.on('plotly_hover', () => {
              const now = performance.now();
              window.__times.push(now - window.__event);
              window.__handling.push(now - window.__reached);
          });
          const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
          window.__pixelOf = (i) => [xa._offset + xa.l2p(x[i]), ya._offset + ya.l2p(y[i])];
          return x.length;
        }""",
        f"{base}/explore/builds/{build.pk}/points.bin",
    )
    assert ok == build.point_count
    rng = random.Random(6)
    for _ in range(moves):
        x, y = page.evaluate(f"window.__pixelOf({rng.randrange(build.point_count)})")
        page.mouse.move(x, y)
        page.wait_for_timeout(80)  # Plotly handles at most one hover per 50 ms
    times, handling = page.evaluate("[window.__times, window.__handling]")
    context.close()
    return times, handling


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--texts", type=int, default=400, help="texts embedded for the throughput ratio")
    parser.add_argument("--rounds", type=int, default=6, help="embedding rounds (best of)")
    parser.add_argument("--sizes", default=f"10000,50000,{FULL_RELEASE}", help="UMAP sizes, comma-separated")
    parser.add_argument("--map-points", type=int, default=FULL_RELEASE, help="points of the browser map")
    parser.add_argument("--loads", type=int, default=3, help="cold page loads to time")
    parser.add_argument("--skip-embeddings", action="store_true")
    parser.add_argument("--skip-umap", action="store_true")
    parser.add_argument("--skip-browser", action="store_true")
    options = parser.parse_args()
    setup_django()
    print(f"machine: {os.cpu_count()} CPUs; timings are noisy on a shared machine")
    if not options.skip_embeddings:
        bench_embeddings(options.texts, options.rounds)
    umap_result = None
    if not options.skip_umap:
        umap_result = bench_umap([int(s) for s in options.sizes.split(",") if s.strip()])
    if not options.skip_browser:
        build = build_big_map(options.map_points, umap_result)
        bench_browser(build, options.loads)


if __name__ == "__main__":
    main()
