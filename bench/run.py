"""Throughput of the widget API against a one-insert DRF baseline, same server, same run.

    python -m bench.run [--seconds N] [--concurrency C] [--rounds R] [--ai-eager]

Creates and migrates a fresh `replybase_bench` database, seeds a tenant, bot, knowledge
base and site through the project's services, starts one gunicorn (2 workers, gthread)
on a free loopback port, then measures requests/second of `POST bench/baseline`,
`GET config` and `POST messages` in interleaved rounds (so machine noise hits all three
alike) and compares the medians. Exits 1 when a target is missed or a request failed.
gunicorn is always stopped, the database dropped and the run's Redis keys (cache prefix
and Celery queue) deleted.

`POST messages` is measured as deployed: the request stores the message, runs the flows
and queues the AI reply on the Redis broker for a worker (none runs here). `--ai-eager`
computes the AI reply inside the request instead, as the embedded mode does.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
API = "/api/webchat/v1/"
ORIGIN = "https://bench.example.com"
TARGETS = {"config": 0.8, "messages": 0.5}
WORKERS = 2
THREADS = 4
SERVER_START_TIMEOUT = 30.0
# Visitor questions: some hit a flow rule, the others are answered by the knowledge base.
QUESTIONS = (
    "How long does shipping take to Germany?",
    "What are your opening hours?",
    "Can I return shoes I already wore outside?",
    "Do you ship to Canada and how much does it cost?",
    "How do I reset my password?",
    "Is there a warranty on the rain jacket?",
)


# --- database and seed data ------------------------------------------------------------


def _admin_connection():
    """A connection to the server's maintenance database (to create and drop ours)."""
    import psycopg
    from django.conf import settings

    db = settings.DATABASES["default"]
    return psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=int(db["PORT"] or 5432),
        user=db["USER"] or "postgres",
        password=db["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    )


def database_recreate(name: str) -> None:
    from psycopg import sql

    with _admin_connection() as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def database_drop(name: str) -> None:
    from django.db import connections
    from psycopg import sql

    connections.close_all()
    with _admin_connection() as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def cache_keys_delete() -> int:
    """Delete this run's keys only (its cache prefix and its Celery queue), never the
    whole Redis database."""
    from django.conf import settings
    from django.core.cache import cache

    client = cache._cache.get_client(write=True)
    keys = list(client.scan_iter(match=f"{cache.make_key('')}*", count=1000))
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    # the queue and kombu's binding tables for it
    keys += [queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}"]
    client.delete(*keys)
    return len(keys)


@dataclass(frozen=True)
class Seed:
    tenant_id: int
    site_id: int
    site_key: str


def seed() -> Seed:
    """A tenant with a knowledge-base bot, a few flow rules and articles, and one site."""
    from django.db import transaction

    from bots.models import Bot, FlowAction, FlowRule, FlowTrigger
    from bots.services import ArticleInput, knowledge_import
    from tenants.models import PlanTier
    from tenants.services import tenant_create
    from webchat.services import site_create

    with transaction.atomic():
        tenant, _owner, _password = tenant_create(
            name="Bench Outfitters",
            slug="bench",
            plan_tier=PlanTier.PRO,
            owner_email="owner@bench.test",
        )
        bot = Bot.objects.create(tenant=tenant, name="Bench bot")
        for position, (name, trigger, pattern, text) in enumerate(
            [
                ("Greeting", FlowTrigger.GREETING, "", "Hi! Ask me anything about your order."),
                ("Hours", FlowTrigger.KEYWORD, "opening hours, open", "We're open 9-17, Mon-Fri."),
            ]
        ):
            rule = FlowRule(
                bot=bot,
                position=position,
                name=name,
                trigger=trigger,
                pattern=pattern,
                action=FlowAction.REPLY,
                reply_text=text,
            )
            rule.full_clean()
            rule.save()
        knowledge_import(tenant=tenant, articles=_articles(ArticleInput))
        site = site_create(
            tenant=tenant, name="Bench shop", bot=bot, allowed_domains=["bench.example.com"]
        )
    return Seed(tenant_id=tenant.pk, site_id=site.pk, site_key=site.site_key)


def _articles(article_input: Callable[..., Any]) -> list:
    topics = {
        "Shipping times": "Orders ship within 2 business days. Delivery to Germany takes 3-5 days, "
        "to Canada 7-10 days. Express shipping costs 15 EUR.",
        "Returns": "You can return unworn shoes within 30 days. Worn items cannot be returned "
        "unless they are faulty.",
        "Password reset": "To reset your password, click 'Forgot password' on the login page and "
        "follow the link we email you.",
        "Warranty": "Every jacket has a two-year warranty against manufacturing defects.",
        "Payment methods": "We accept cards, PayPal and bank transfer. Invoices are emailed.",
    }
    return [article_input(title=t, body=b, tags=(t.split()[0].lower(),)) for t, b in topics.items()]


# --- the server ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    process: subprocess.Popen
    base_url: str
    log_path: Path


def server_start(*, seed_data: Seed, workdir: Path, env: dict[str, str]) -> Server:
    port = free_port()
    metrics_dir = workdir / "prometheus"
    metrics_dir.mkdir()
    # An explicit, empty config file: otherwise gunicorn would load the repo's production
    # gunicorn.conf.py (public bind, access log) from the working directory.
    config = workdir / "gunicorn.bench.py"
    config.write_text("# all settings are given on the command line\n")
    log_path = workdir / "server.log"
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "config.wsgi:application",
        f"--config={config}",
        f"--bind=127.0.0.1:{port}",
        f"--workers={WORKERS}",
        f"--threads={THREADS}",
        "--worker-class=gthread",
        # Longer than the pause between rounds, so no idle connection is cut mid-request.
        "--keep-alive=30",
        "--timeout=60",
    ]
    server_env = {
        **env,
        "BENCH_TENANT_ID": str(seed_data.tenant_id),
        "BENCH_SITE_ID": str(seed_data.site_id),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=REPO,
            env=server_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopping it stops its workers
        )
    server = Server(process=process, base_url=f"http://127.0.0.1:{port}", log_path=log_path)
    try:
        _wait_until_ready(server)
    except BaseException:
        server_stop(server)
        raise
    return server


def _wait_until_ready(server: Server) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited at start:\n{_log_tail(server)}")
        try:
            if httpx.get(server.base_url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(
        f"gunicorn did not answer /healthz in {SERVER_START_TIMEOUT:g} s:\n{_log_tail(server)}"
    )


def _log_tail(server: Server, lines: int = 30) -> str:
    try:
        return "\n".join(server.log_path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def server_stop(server: Server) -> None:
    """Quick-stop the process group (master and workers), SIGKILL it if it lingers."""
    if server.process.poll() is not None:
        return
    group = server.process.pid  # start_new_session: the group id is the master's pid
    try:
        # SIGINT is gunicorn's quick shutdown: SIGTERM would wait out keep-alive connections.
        os.killpg(group, signal.SIGINT)
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(group, signal.SIGKILL)
        server.process.wait(timeout=5)
    except ProcessLookupError:
        pass


# --- the load ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    method: str
    url: str
    headers: dict[str, str]
    json: dict | None = None


@dataclass
class Tally:
    ok: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    failures: Counter = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)

    def merge(self, other: Tally) -> None:
        self.ok += other.ok
        self.latencies_ms += other.latencies_ms
        self.failures.update(other.failures)
        self.samples += other.samples[: max(0, 3 - len(self.samples))]


@dataclass
class Measurement:
    rps: float
    tally: Tally
    # The generator's own CPU share of one core: near 100 % it, not the server, is the limit.
    client_cpu: float


@dataclass(frozen=True)
class Scenario:
    name: str
    label: str
    expected_status: int
    next_call: Callable[[int], Call]  # given the worker's number


# Set when the run is interrupted, so load threads stop before their clients are closed.
_STOPPING = threading.Event()


def _drive(
    worker: int, client: httpx.Client, scenario: Scenario, deadline: float, tally: Tally
) -> None:
    while time.perf_counter() < deadline and not _STOPPING.is_set():
        call = scenario.next_call(worker)
        started = time.perf_counter()
        try:
            response = client.request(call.method, call.url, headers=call.headers, json=call.json)
        except (httpx.HTTPError, RuntimeError) as exc:
            if _STOPPING.is_set():
                return  # the client was closed under us by the clean-up
            tally.failures[type(exc).__name__] += 1
            continue
        tally.latencies_ms.append((time.perf_counter() - started) * 1000)
        if response.status_code == scenario.expected_status:
            tally.ok += 1
        else:
            tally.failures[str(response.status_code)] += 1
            if len(tally.samples) < 3:
                tally.samples.append(f"{response.status_code} {response.text[:300]}")


def measure(scenario: Scenario, clients: list[httpx.Client], seconds: float) -> Measurement:
    """Every client drives the scenario in its own thread for `seconds`; successes/second."""
    tallies = [Tally() for _ in clients]
    cpu_started = time.process_time()
    started = time.perf_counter()
    deadline = started + seconds
    threads = [
        threading.Thread(
            target=_drive, args=(worker, client, scenario, deadline, tally), daemon=True
        )
        for worker, (client, tally) in enumerate(zip(clients, tallies, strict=True))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 60)
    elapsed = time.perf_counter() - started
    client_cpu = (time.process_time() - cpu_started) / elapsed
    total = Tally()
    for tally in tallies:
        total.merge(tally)
    return Measurement(rps=total.ok / elapsed, tally=total, client_cpu=client_cpu)


# --- scenarios -------------------------------------------------------------------------


def open_sessions(base_url: str, site_key: str, count: int) -> list[str]:
    """Session tokens from real config + init round trips, as the widget gets them."""
    tokens = []
    with httpx.Client(base_url=base_url, headers={"Origin": ORIGIN}, timeout=10) as client:
        for _ in range(count):
            config = client.get(API + "config", params={"site_key": site_key})
            config.raise_for_status()
            init = client.post(
                API + "init",
                json={"site_key": site_key, "challenge": config.json()["challenge"]},
            )
            init.raise_for_status()
            tokens.append(init.json()["session_token"])
    return tokens


def scenarios(site_key: str, tokens: list[str], workers: int) -> list[Scenario]:
    counter = itertools.count()  # next() on it is atomic under the GIL: safe across threads
    # Each worker talks in its own sessions, one message at a time, as visitors do: no
    # two requests ever wait on the same conversation's row lock.
    sessions = [itertools.cycle(tokens[worker::workers]) for worker in range(workers)]

    def baseline(_worker: int) -> Call:
        return Call("POST", "/bench/baseline", {}, {"n": next(counter)})

    def config(_worker: int) -> Call:
        return Call("GET", f"{API}config?site_key={site_key}", {"Origin": ORIGIN})

    def message(worker: int) -> Call:
        token = next(sessions[worker])
        text = QUESTIONS[next(counter) % len(QUESTIONS)]
        return Call(
            "POST",
            API + "messages",
            {"Origin": ORIGIN, "Authorization": f"Bearer {token}"},
            {"text": text, "client_message_id": uuid.uuid4().hex},
        )

    return [
        Scenario("baseline", "POST bench/baseline", 201, baseline),
        Scenario("config", "GET config", 200, config),
        Scenario("messages", "POST messages", 201, message),
    ]


def rounds_run(
    plan: list[Scenario], clients: list[httpx.Client], *, rounds: int, seconds: float
) -> dict[str, list[Measurement]]:
    """Interleave the scenarios, rotating which goes first, so drift hits all alike."""
    results: dict[str, list[Measurement]] = {s.name: [] for s in plan}
    for number in range(rounds):
        order = plan[number % len(plan) :] + plan[: number % len(plan)]
        for scenario in order:
            results[scenario.name].append(measure(scenario, clients, seconds))
            print(
                f"  round {number + 1}: {scenario.label:<20} {results[scenario.name][-1].rps:8.1f} req/s",
                flush=True,
            )
    return results


# --- report ----------------------------------------------------------------------------


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def report(
    plan: list[Scenario], results: dict[str, list[Measurement]]
) -> tuple[dict[str, float], int]:
    """Print the table; return the median rps per scenario and the number of failed requests."""
    rounds = len(next(iter(results.values())))
    header = f"{'endpoint':<20}" + "".join(f"{'round ' + str(i + 1):>10}" for i in range(rounds))
    print(
        header
        + f"{'median':>10}{'p50 ms':>9}{'p95 ms':>9}{'requests':>10}{'failed':>8}{'client cpu':>12}"
    )
    medians: dict[str, float] = {}
    failed_total = 0
    for scenario in plan:
        runs = results[scenario.name]
        medians[scenario.name] = statistics.median(m.rps for m in runs)
        latencies = [ms for m in runs for ms in m.tally.latencies_ms]
        failed = sum(sum(m.tally.failures.values()) for m in runs)
        failed_total += failed
        print(
            f"{scenario.label:<20}"
            + "".join(f"{m.rps:>10.1f}" for m in runs)
            + f"{medians[scenario.name]:>10.1f}"
            + f"{_percentile(latencies, 0.5):>9.1f}{_percentile(latencies, 0.95):>9.1f}"
            + f"{sum(m.tally.ok for m in runs):>10}{failed:>8}"
            + f"{statistics.median(m.client_cpu for m in runs):>11.0%}"
        )
        for m in runs:
            for sample in m.tally.samples[:1]:
                print(f"    failure sample: {sample}")
    return medians, failed_total


def verdict(medians: dict[str, float], failed: int) -> int:
    code = 0
    for name, target in TARGETS.items():
        ratio = medians[name] / medians["baseline"] if medians["baseline"] else 0.0
        print(f"{name}/baseline ratio: {ratio:.2f} (target >= {target})")
        if ratio < target:
            code = 1
    if failed:
        print(f"FAILED: {failed} requests did not get their expected status (see samples above)")
        code = 1
    print("bench: " + ("targets met" if code == 0 else "TARGET MISSED"))
    return code


# --- main ------------------------------------------------------------------------------


@contextmanager
def _clients(base_url: str, count: int) -> Iterator[list[httpx.Client]]:
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    clients = [httpx.Client(base_url=base_url, timeout=30, limits=limits) for _ in range(count)]
    try:
        yield clients
    finally:
        _STOPPING.set()
        for client in clients:
            client.close()


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one measurement")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads (connections)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median taken)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per endpoint")
    parser.add_argument(
        "--ai-eager",
        action="store_true",
        help="compute the AI reply inside the request instead of queueing it for a worker",
    )
    return parser.parse_args(argv)


def _raise_on_sigterm(signum: int, _frame: object) -> None:
    # Turn a SIGTERM into an exception so the `finally` blocks stop gunicorn and drop the DB.
    raise KeyboardInterrupt(f"signal {signum}")


def benchmark(args: argparse.Namespace, env: dict[str, str], workdir: Path) -> int:
    data = seed()
    server = server_start(seed_data=data, workdir=workdir, env=env)
    try:
        print(
            f"gunicorn {WORKERS} workers x {THREADS} threads at {server.base_url}; "
            f"{args.concurrency} client connections; {args.rounds} rounds x {args.seconds:g} s; "
            f"AI reply {'computed in the request' if args.ai_eager else 'queued for a worker'}",
            flush=True,
        )
        tokens = open_sessions(server.base_url, data.site_key, count=max(8, args.concurrency * 2))
        plan = scenarios(data.site_key, tokens, workers=args.concurrency)
        with _clients(server.base_url, args.concurrency) as clients:
            for scenario in plan:
                measure(scenario, clients, args.warmup)
            results = rounds_run(plan, clients, rounds=args.rounds, seconds=args.seconds)
        print()
        medians, failed = report(plan, results)
        code = verdict(medians, failed)
        if failed:
            print("server log tail:\n" + _log_tail(server))
        return code
    finally:
        server_stop(server)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    os.environ.setdefault("BENCH_CACHE_PREFIX", f"rbbench{os.getpid()}")
    os.environ["BENCH_CELERY_EAGER"] = "1" if args.ai_eager else "0"
    os.environ.setdefault("BENCH_CELERY_QUEUE", f"replybase-bench-{os.getpid()}")
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    import django
    from django.conf import settings
    from django.core.management import call_command

    django.setup()
    # httpx logs every request at INFO through the project's JSON root logger.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    name = settings.DATABASES["default"]["NAME"]
    database_recreate(name)
    try:
        call_command("migrate", interactive=False, verbosity=0)
        with tempfile.TemporaryDirectory(prefix="replybase-bench-") as tmp:
            return benchmark(args, dict(os.environ), Path(tmp))
    finally:
        cache_keys_delete()
        database_drop(name)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM, after the clean-up ran
        print(f"bench: interrupted ({stop or 'Ctrl-C'}); server stopped, database dropped")
        sys.exit(130)
