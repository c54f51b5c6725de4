"""gunicorn settings for production (`gunicorn config.wsgi`)."""

import os
import shutil

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = 30
graceful_timeout = 20
keepalive = 5
max_requests = 2000
max_requests_jitter = 200
accesslog = "-"
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None

# Prometheus multi-process mode: each worker writes its metrics to files in this folder
# and /metrics merges them, so counts are right whichever worker answers the scrape.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", "/tmp/replybase-prometheus")


def on_starting(server) -> None:
    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, exist_ok=True)


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
