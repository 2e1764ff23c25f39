"""Annotation API under load: many crowdworkers claiming and submitting at once over HTTP.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mwe .venv/bin/python benchmarks/annotation_load.py
    (make bench runs it; --help lists the knobs: items, overlap, workers, seconds, gunicorn layout)

In a throwaway PostgreSQL database (Django's test-database helpers, under a name of its own, so it
never touches real data or a concurrent test run) it builds a project (default 10,000 items, overlap
3) and 50 workers with API tokens, starts gunicorn with the test settings on a free loopback port,
and runs three phases against that same server:

1. baseline: the raw request rate of a trivial endpoint (GET /api/, no database) with the same
   number of client threads -- the ceiling of this server, client and machine;
2. baseline: one worker claiming and submitting alone (pairs/s and latencies, no contention);
3. the load: every worker a thread with a keep-alive connection, claim -> submit in a loop, for a
   bounded time or until nothing is left.

It prints claim+submit pairs per second, p50/p95 of claim and of submit, the ratios against the
baselines, and then checks the invariants in the database (no item over its overlap, counters equal
to the tables, one response per item and worker, every response on a submitted lease of the same
item and worker) and prints the violations, or zero. The client runs on the same machine as the
server and PostgreSQL and takes its share of the cores: compare ratios, not absolute numbers.
The issue's target: >= 300 pairs/s with p95 < 100 ms on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import runpy
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/mwe"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--items",
        type=int,
        default=10_000,
        help="project size; at 400+ pairs/s, 2,000 items (6,000 pairs) run out within the 20 s",
    )
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--workers", type=int, default=50, help="simulated crowdworkers (client threads)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the load phase")
    parser.add_argument("--baseline-seconds", type=float, default=4.0)
    parser.add_argument(
        "--gunicorn-workers", type=int, help="processes (default: mwe_site/gunicorn.conf.py's, one per core)"
    )
    parser.add_argument(
        "--gunicorn-threads", type=int, help="threads per process (default: gunicorn.conf.py's, 4)"
    )
    parser.add_argument(
        "--gunicorn-sync", action="store_true", help="sync workers (no keep-alive) instead of gthread"
    )
    parser.add_argument(
        "--conn-max-age",
        type=int,
        default=60,
        help="DATABASE_CONN_MAX_AGE for the server: 0 opens a PostgreSQL connection per request",
    )
    args = parser.parse_args(argv)
    # Unset layout values come from the site's gunicorn settings, as a deployment would get them.
    config = runpy.run_path(str(ROOT / "mwe_site" / "gunicorn.conf.py"))
    args.gunicorn_workers = args.gunicorn_workers or config["workers"]
    args.gunicorn_threads = args.gunicorn_threads or config["threads"]
    return args


# --- The client -----------------------------------------------------------------------------------


@dataclass
class Stats:
    claim_ms: list[float] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)
    other_ms: list[float] = field(default_factory=list)
    pairs: int = 0
    finished: int = 0  # workers told "nothing left" (204)
    errors: dict[str, int] = field(default_factory=dict)
    client_cpu_s: float = 0.0  # CPU time the load generator itself used during the phase

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1

    @property
    def requests(self) -> int:
        return 2 * self.pairs + len(self.other_ms)


class Client:
    """One simulated worker's keep-alive HTTP/1.1 connection, on asyncio: the load generator shares
    the machine's cores with the server and PostgreSQL, so it must cost as little CPU per request as
    possible (the benchmark prints what it used: 50 threads with http.client took about half a core,
    as much CPU as the server itself). It speaks just enough
    HTTP/1.1 for this server: Content-Length bodies, keep-alive, reconnect when the server closes."""

    def __init__(self, port: int, token: str | None = None) -> None:
        self.port = port
        self.headers = "Host: 127.0.0.1\r\nAccept: application/json\r\n"
        if token:
            self.headers += f"Authorization: Token {token}\r\n"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes, float]:
        payload = json.dumps(body).encode() if body is not None else b""
        head = f"{method} {path} HTTP/1.1\r\n{self.headers}"
        if body is not None:
            head += "Content-Type: application/json\r\n"
        message = f"{head}Content-Length: {len(payload)}\r\n\r\n".encode() + payload
        for attempt in (1, 2):
            if self.writer is None:
                await self._connect()
            started = time.perf_counter()
            try:
                self.writer.write(message)
                status_and_headers = await self.reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                # The server closed an idle keep-alive connection before reading: send again once.
                await self.close()
                if attempt == 2:
                    raise
                continue
            lines = status_and_headers.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers = {}
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            if "chunked" in headers.get("transfer-encoding", ""):
                raise RuntimeError("chunked responses are not expected from these endpoints")
            length = int(headers.get("content-length", "0"))
            data = await self.reader.readexactly(length) if length else b""
            elapsed = (time.perf_counter() - started) * 1000
            if headers.get("connection", "").lower() == "close":
                await self.close()
            return status, data, elapsed
        raise AssertionError("unreachable")

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(ConnectionError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


async def work_loop(client: Client, stats: Stats, deadline: float, index: int) -> None:
    """Claim, submit, repeat until the deadline or until the server says nothing is left."""
    n = 0
    while time.perf_counter() < deadline:
        status, data, claim_ms = await client.request("POST", "/api/tasks/next/", {})
        if status == 204:
            stats.finished += 1
            return
        if status != 200:
            stats.error(f"claim {status}")
            await asyncio.sleep(0.05)
            continue
        task = json.loads(data)
        assignment = task["id"]
        n += 1
        options = task["example"]["answer_options"]
        answer = {
            "relevance": 1 + (index + n) % 5,
            "answer": options[n % len(options)],
            "ambiguous": n % 7 == 0,
        }
        status, _, submit_ms = await client.request("POST", f"/api/assignments/{assignment}/submit/", answer)
        if status != 201:
            stats.error(f"submit {status}")
            continue
        stats.claim_ms.append(claim_ms)
        stats.submit_ms.append(submit_ms)
        stats.pairs += 1


async def trivial_loop(client: Client, stats: Stats, deadline: float, index: int) -> None:
    while time.perf_counter() < deadline:
        status, _, elapsed = await client.request("GET", "/api/")
        if status != 200:
            stats.error(f"GET /api/ {status}")
            continue
        stats.other_ms.append(elapsed)


def run_phase(loop, clients: list[Client], seconds: float) -> tuple[Stats, float]:
    """Run `loop` for every client at once on one event loop; the stats and the elapsed seconds."""

    async def main() -> tuple[Stats, float]:
        stats = Stats()
        cpu = time.process_time()
        started = time.perf_counter()
        deadline = started + seconds
        try:
            await asyncio.gather(*(loop(client, stats, deadline, i) for i, client in enumerate(clients)))
        finally:
            elapsed = time.perf_counter() - started
            stats.client_cpu_s = time.process_time() - cpu
            for client in clients:
                await client.close()
        return stats, elapsed

    return asyncio.run(main())


class CpuMeter:
    """Where the CPU went during a phase, from /proc (Linux): the whole machine, the gunicorn
    processes, PostgreSQL (the backends serving the benchmark's database and the server's own
    processes), and this process (the load generator). Absent elsewhere."""

    TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def __init__(self, server_pgid: int, database: str) -> None:
        self.server_pgid = server_pgid
        self.database = database.encode()
        self.available = Path("/proc/stat").exists()

    def _processes(self) -> tuple[float, float]:
        server = postgres = 0.0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                raw = stat.read_text()
                # A backend's title names its database ("postgres: user db host(port) idle"); the
                # server's own processes (WAL writer, checkpointer...) count too, those of other
                # databases on the machine do not.
                title = (stat.parent / "cmdline").read_bytes()
            except OSError:
                continue  # the process ended
            name = raw[raw.index("(") + 1 : raw.rindex(")")]
            fields = raw[raw.rindex(")") + 2 :].split()
            seconds = (int(fields[11]) + int(fields[12])) / self.TICK  # utime + stime
            if int(fields[2]) == self.server_pgid:
                server += seconds
            elif name == "postgres" and (
                self.database in title or not (b"(" in title or b"[local]" in title)
            ):
                postgres += seconds
        return server, postgres

    def _machine(self) -> float:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = values[3] + values[4]  # idle + iowait
        return (sum(values[:8]) - idle) / self.TICK

    def snapshot(self) -> tuple[float, ...]:
        if not self.available:
            return ()
        return (self._machine(), *self._processes(), time.process_time())

    def report(self, before: tuple[float, ...], after: tuple[float, ...], pairs: int, elapsed: float) -> str:
        if not before or not pairs:
            return ""
        machine, server, postgres, client = (b - a for a, b in zip(before, after, strict=True))
        other = machine - server - postgres - client

        def per_pair(seconds: float) -> str:
            return f"{1000 * seconds / pairs:.2f}"

        cores = os.cpu_count() or 1
        own = server + postgres + client
        return (
            f"  CPU per pair (ms): gunicorn {per_pair(server)}, PostgreSQL {per_pair(postgres)}, "
            f"load generator {per_pair(client)}, rest of the machine {per_pair(other)}; "
            f"machine busy {100 * machine / elapsed / cores:.0f}% of {cores} CPUs\n"
            # What the same CPU cost per pair would allow if nothing else ran (an estimate: it
            # ignores waits on locks and disk, and costs per pair grow when the CPUs are contended).
            f"  CPU-bound ceiling if this machine ran nothing else: {cores * pairs / own:,.0f} pairs/s"
        )


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


# --- The server -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(*, database_url: str, args: argparse.Namespace) -> tuple[subprocess.Popen, int, Path]:
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="annotation-load-")) / "gunicorn.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mwe_site.settings.test",
        "DATABASE_URL": database_url,
        "DATABASE_CONN_MAX_AGE": str(args.conn_max_age),
        # The per-worker API throttle (600/minute) would cap a simulated worker at 5 pairs/s; the
        # load measures the server, not the throttle.
        "MWE_ANNOTATION_THROTTLE": "1000000/minute",
    }
    # The site's own gunicorn settings (mwe_site/gunicorn.conf.py), with the layout under test.
    command = [
        str(Path(sys.executable).parent / "gunicorn"),
        "--config",
        str(ROOT / "mwe_site" / "gunicorn.conf.py"),
        "mwe_site.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        "--error-logfile",
        str(log),
    ]
    command += ["--workers", str(args.gunicorn_workers), "--threads", str(args.gunicorn_threads)]
    if args.gunicorn_sync:
        command += ["--worker-class", "sync"]
    server = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"gunicorn exited ({server.returncode}); see {log}:\n{log.read_text()[-3000:]}")
        try:
            if server_answers(port):
                # Warm every process (imports, URL resolver, first connection) before measuring.
                warm = [Client(port) for _ in range(args.gunicorn_workers * args.gunicorn_threads * 2)]
                run_phase(trivial_loop, warm, 1.0)
                return server, port, log
        except OSError:
            pass
        time.sleep(0.2)
    stop_gunicorn(server)
    sys.exit(f"gunicorn did not answer within 60 s; see {log}")


def server_answers(port: int) -> bool:
    async def probe() -> int:
        client = Client(port)
        try:
            status, _, _ = await client.request("GET", "/api/")
        finally:
            await client.close()
        return status

    return asyncio.run(probe()) == 200


def stop_gunicorn(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


# --- The data and the invariants ------------------------------------------------------------------


def build(*, items: int, overlap: int, workers: int):
    from annotation.services.projects import project_create
    from annotation.services.workers import worker_api_token, worker_create
    from generation.catalog.formats import text_hash
    from generation.models import Example
    from tests.builders import DatasetFactory

    dataset = DatasetFactory(slug="load", behavior="load test")
    Example.objects.bulk_create(
        [
            Example(
                dataset=dataset,
                position=i,
                statement=f"I like load-test statement number {i}",
                question=f'Is the following statement something you would say?\n"load-test {i}"',
                answer_matching_behavior=" Yes",
                answer_not_matching_behavior=" No",
                label_confidence=0.9,
                text_hash=text_hash(f"I like load-test statement number {i}"),
            )
            for i in range(items)
        ],
        batch_size=1000,
    )
    project = project_create(
        name="Load", slug="load", datasets=[dataset], overlap=overlap, instructions="Rate **each** item."
    )
    tokens = []
    for i in range(workers + 1):  # the last one is the single-worker baseline
        worker = worker_create(project=project, external_id=f"load-{i}")
        tokens.append(worker_api_token(worker=worker))
    return project, tokens[:-1], tokens[-1]


def violations(project) -> list[str]:
    """Every broken invariant, recomputed from the tables (empty when all hold)."""
    from collections import Counter

    from annotation.models import Assignment, ProjectItem, Response

    problems = []
    responses = Counter(Response.objects.filter(project=project).values_list("item_id", flat=True))
    by_status = {
        status: Counter(
            Assignment.objects.filter(project=project, status=status).values_list("item_id", flat=True)
        )
        for status in (Assignment.Status.CLAIMED, Assignment.Status.SUBMITTED)
    }
    live, submitted = by_status[Assignment.Status.CLAIMED], by_status[Assignment.Status.SUBMITTED]
    for item in ProjectItem.objects.filter(project=project):
        if responses[item.pk] > item.overlap or item.submitted_count > item.overlap:
            problems.append(f"item {item.pk}: {responses[item.pk]} responses, overlap {item.overlap}")
        if item.reserved_count > item.overlap:
            problems.append(f"item {item.pk}: {item.reserved_count} reserved, overlap {item.overlap}")
        if not (item.submitted_count == responses[item.pk] == submitted[item.pk]):
            problems.append(
                f"item {item.pk}: submitted_count {item.submitted_count}, responses {responses[item.pk]}, "
                f"submitted leases {submitted[item.pk]}"
            )
        if item.reserved_count != responses[item.pk] + live[item.pk]:
            problems.append(
                f"item {item.pk}: reserved_count {item.reserved_count} != responses + live leases "
                f"{responses[item.pk] + live[item.pk]}"
            )
    pairs = Counter(Response.objects.filter(project=project).values_list("item_id", "worker_id"))
    problems += [f"item {i}, worker {w}: {n} responses" for (i, w), n in pairs.items() if n > 1]
    live_pairs = Counter(
        Assignment.objects.filter(project=project, status=Assignment.Status.CLAIMED).values_list(
            "item_id", "worker_id"
        )
    )
    problems += [f"item {i}, worker {w}: {n} live leases" for (i, w), n in live_pairs.items() if n > 1]
    for response in Response.objects.filter(project=project).select_related("assignment"):
        lease = response.assignment
        if lease.status != Assignment.Status.SUBMITTED or (lease.item_id, lease.worker_id) != (
            response.item_id,
            response.worker_id,
        ):
            problems.append(f"response {response.pk}: lease {lease.pk} is {lease.status}")
    return problems


# --- Main -----------------------------------------------------------------------------------------


def report_pairs(name: str, stats: Stats, elapsed: float) -> float:
    rate = stats.pairs / elapsed
    print(
        f"{name}: {stats.pairs:,} pairs in {elapsed:.1f} s = {rate:,.0f} pairs/s; "
        f"claim p50 {pct(stats.claim_ms, 50):.1f} ms p95 {pct(stats.claim_ms, 95):.1f} ms; "
        f"submit p50 {pct(stats.submit_ms, 50):.1f} ms p95 {pct(stats.submit_ms, 95):.1f} ms; "
        f"load generator {1000 * stats.client_cpu_s / max(stats.requests, 1):.2f} ms CPU per request"
        + (f"; errors {stats.errors}" if stats.errors else "")
    )
    return rate


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mwe_site.settings.test")
    os.environ.setdefault("DATABASE_URL", DEFAULT_PG)
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import setup_databases, teardown_databases

    if connection.vendor != "postgresql":
        sys.exit("this benchmark needs PostgreSQL: set DATABASE_URL=postgres://...")
    # A database of its own: never the real one, nor the test database of a concurrent pytest run.
    test_name = f"mwe_bench_annotation_load_{os.getpid()}"
    connection.settings_dict["TEST"]["NAME"] = test_name
    old = setup_databases(verbosity=0, interactive=False)
    server = None
    try:
        project, tokens, solo_token = build(items=args.items, overlap=args.overlap, workers=args.workers)
        parts = urlsplit(os.environ["DATABASE_URL"])
        database_url = urlunsplit(parts._replace(path=f"/{test_name}"))
        connection.close()
        server, port, log = start_gunicorn(database_url=database_url, args=args)
        layout = (
            f"{args.gunicorn_workers} sync workers"
            if args.gunicorn_sync
            else f"{args.gunicorn_workers} gthread workers x {args.gunicorn_threads} threads"
        )
        print(
            f"gunicorn on 127.0.0.1:{port}: {layout}, DATABASE_CONN_MAX_AGE={args.conn_max_age}; "
            f"{os.cpu_count()} CPUs (client, server and PostgreSQL share them)"
        )
        print(
            f"project: {args.items:,} items, overlap {args.overlap} "
            f"({args.items * args.overlap:,} pairs at most); {args.workers} workers"
        )

        trivial, elapsed = run_phase(
            trivial_loop, [Client(port) for _ in range(args.workers)], args.baseline_seconds
        )
        trivial_rate = len(trivial.other_ms) / elapsed
        print(
            f"baseline, GET /api/ (no database) with {args.workers} clients: {trivial_rate:,.0f} requests/s; "
            f"p50 {pct(trivial.other_ms, 50):.1f} ms p95 {pct(trivial.other_ms, 95):.1f} ms"
            + (f"; errors {trivial.errors}" if trivial.errors else "")
        )
        solo, elapsed = run_phase(work_loop, [Client(port, solo_token)], args.baseline_seconds)
        solo_rate = report_pairs("baseline, one worker alone", solo, elapsed)

        meter = CpuMeter(server.pid, test_name)
        before = meter.snapshot()
        load, elapsed = run_phase(work_loop, [Client(port, token) for token in tokens], args.seconds)
        after = meter.snapshot()
        rate = report_pairs(f"load, {args.workers} workers", load, elapsed)
        if cpu := meter.report(before, after, load.pairs, elapsed):
            print(cpu)
        if load.finished:
            print(f"  ({load.finished} workers ran out of items before the end)")
        print(
            f"ratios: load pairs/s / one worker = {rate / solo_rate:.1f}x; "
            f"load requests/s / GET /api/ requests/s = {2 * rate / trivial_rate:.2f}"
        )
        p95 = max(pct(load.claim_ms, 95), pct(load.submit_ms, 95))
        verdict = "met" if rate >= 300 and p95 < 100 else "not met"
        print(f"target >= 300 pairs/s with p95 < 100 ms: {verdict} ({rate:,.0f} pairs/s, p95 {p95:.1f} ms)")
        stop_gunicorn(server)
        server = None
        errors = log.read_text().strip()
        if errors:
            print(f"gunicorn error log ({log}):\n{errors[-2000:]}")

        problems = violations(project)
        print(f"invariant violations: {len(problems)}")
        for problem in problems[:20]:
            print(f"  {problem}")
        return 1 if problems or load.errors else 0
    finally:
        if server is not None:
            stop_gunicorn(server)
        connection.close()
        teardown_databases(old, verbosity=0)


if __name__ == "__main__":
    sys.exit(main())
