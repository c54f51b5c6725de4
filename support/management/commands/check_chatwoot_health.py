"""`python manage.py check_chatwoot_health [--connection ID | --all] [--json]`

Exit codes: 0 all checks passed, 1 configuration missing, 2 platform health failed,
3 authenticated API failed, 4 all failed (several connections: the highest code).
"""

import json
import sys

from django.core.management.base import BaseCommand, CommandParser

from support import health, services


class Command(BaseCommand):
    help = "Check Chatwoot platform health and the authenticated API (exit codes 0–4)."

    def add_arguments(self, parser: CommandParser) -> None:
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--connection", type=int, metavar="ID", help="Check one connection.")
        which.add_argument(
            "--all", action="store_true", help="Check every active connection (the default)."
        )
        parser.add_argument("--json", action="store_true", help="Print the JSON artifact.")

    def handle(self, *args, **options) -> None:
        errors = []
        if options["connection"] is None:
            services.connection_sync_from_env()
            if problem := services.env_connection_problem():
                errors.append(problem)
        connections = health.connections_for_check(connection_id=options["connection"])
        if options["connection"] is not None and not connections:
            errors.append(f"No Chatwoot connection has id {options['connection']}.")
        run = health.health_check_run(connections, errors=errors)
        if options["json"]:
            self.stdout.write(json.dumps(health.run_json(run), indent=2))
        else:
            self._report(run)
        sys.exit(run.exit_code)

    def _report(self, run: health.HealthRun) -> None:
        for error in run.errors:
            self.stderr.write(f"Configuration: {error}")
        for r in run.results:
            name = f"{r.connection.tenant.slug}/{r.connection.name}"
            if r.missing:
                self.stderr.write(f"{name}: configuration missing: {', '.join(r.missing)}")
                continue
            for label, probe in (("Platform health", r.platform), ("Authenticated API", r.api)):
                if probe.result.ok:
                    self.stdout.write(f"{name}: {label}: OK ({probe.result.ms} ms) {probe.url}")
                else:
                    self.stdout.write(
                        f"{name}: {label}: FAILED {probe.result.error} "
                        f"({probe.result.ms} ms) {probe.url}"
                    )
            if r.in_maintenance and r.exit_code:
                self.stdout.write(f"{name}: in a maintenance window: failure expected, no alert")
            for warning in r.warnings:
                self.stdout.write(f"{name}: warning: {warning}")
        verdict = health.STATUS_NAMES[run.exit_code]
        artifact = f"; artifact {run.artifact}" if run.artifact else ""
        self.stdout.write(f"Exit {run.exit_code} ({verdict}) in {run.duration_ms} ms{artifact}")
