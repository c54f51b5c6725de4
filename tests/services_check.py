"""Fail fast, naming the service, when PostgreSQL or Redis is not reachable.

The suite runs against real services; a missing one is a failure, never a skip.
"""

import os
import socket
import sys

SERVICES = {
    "PostgreSQL": (os.environ.get("PGHOST", "127.0.0.1"), int(os.environ.get("PGPORT", "5432"))),
    "Redis": ("127.0.0.1", 6379),
}


def unreachable() -> list[str]:
    missing = []
    for name, (host, port) in SERVICES.items():
        try:
            socket.create_connection((host, port), timeout=3).close()
        except OSError as exc:
            missing.append(f"{name} at {host}:{port} is unreachable ({exc})")
    return missing


if __name__ == "__main__":
    problems = unreachable()
    for line in problems:
        print(f"services-check: {line}", file=sys.stderr)
    if problems:
        print("services-check: start it (see README, 'Services') and run again.", file=sys.stderr)
        sys.exit(1)
    print("services-check: PostgreSQL and Redis reachable")
