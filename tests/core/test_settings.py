"""Settings read from the environment: a value that cannot work stops the process at start
with the variable's name, instead of starting and failing (or misbehaving) at run time."""

import pytest

from config.settings import base
from rollout.gates import GATE_SPECS
from rollout.models import Mode
from rollout.services import DEMOTION_TARGETS
from tests.core.test_ops import PRODUCTION_ENV, _run_manage

BAD_VALUES = [
    # django-ratelimit fails every request on these ("abc/m": AttributeError, "10/0m":
    # ZeroDivisionError) and reads "10/M" as ten a second.
    ("WEBCHAT_RL_CONFIG_IP", "abc/m"),
    ("WEBCHAT_RL_MESSAGES_SESSION", "10/0m"),
    ("SIGNIN_RATE_IP", "10/M"),
    # Not a mode: the decision fell through to "ga", every tenant on.
    ("ROLLOUT_DEFAULT_MODE", "OFF"),
    # Not a target: every automatic demotion failed, with only a warning in the log.
    ("ROLLOUT_DEMOTION_TARGET", "Off"),
    ("DATABASE_URL", ""),  # set but empty: django-environ reads it as {} (KeyError: 'ENGINE')
    ("RETENTION_MAX_BATCHES", "abc"),
    # Every encrypt and decrypt raised: saving a token, each health check, each LLM reply.
    ("FIELD_ENCRYPTION_KEY", "not-a-fernet-key"),
    # Out of range: the default connection's row broke its check constraint on every health
    # check (IntegrityError, no check recorded for anyone); 0 made every conversation breach.
    ("CHATWOOT_SLA_MINUTES", "-5"),
    ("WEBCHAT_TRUSTED_PROXIES", "-1"),  # hops[1]: a client-written entry, or an IndexError
    ("RETENTION_MAX_BATCHES", "0"),  # retention silently did nothing
]
BAD_THRESHOLDS = {
    "number as text": '{"p95_reply_seconds": {"hard": "20"}}',  # TypeError in every gate run
    "unknown gate": '{"p95_reply_second": {"hard": 20}}',  # the override silently unused
    "unknown limit": '{"p95_reply_seconds": {"max": 20}}',
    "not an object": "[1]",
    "gate not an object": '{"p95_reply_seconds": 20}',
    "not JSON": "{p95_reply_seconds: 20}",
}


def refused(env: dict) -> str:
    result = _run_manage(["check"], {**PRODUCTION_ENV, **env})
    assert result.returncode != 0, result.stdout
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("django.core.exceptions.ImproperlyConfigured: "), result.stderr
    return last


@pytest.mark.slow
@pytest.mark.parametrize(("name", "value"), BAD_VALUES, ids=[f"{n}={v}" for n, v in BAD_VALUES])
def test_a_malformed_value_stops_the_start_and_names_its_variable(name, value):
    assert name in refused({name: value})


@pytest.mark.slow
@pytest.mark.parametrize("value", BAD_THRESHOLDS.values(), ids=list(BAD_THRESHOLDS))
def test_malformed_gate_thresholds_stop_the_start(value):
    assert "ROLLOUT_GATE_THRESHOLDS" in refused({"ROLLOUT_GATE_THRESHOLDS": value})


@pytest.mark.slow
def test_well_formed_values_start():
    env = {
        "WEBCHAT_RL_CONFIG_IP": "100/5m",
        "SIGNIN_RATE_ACCOUNT": "10/15m",
        "WEBCHAT_RL_EVENTS_SITE": "5/s",
        "ROLLOUT_DEFAULT_MODE": "pilot",
        "ROLLOUT_DEMOTION_TARGET": "canary",
        "ROLLOUT_GATE_THRESHOLDS": '{"p95_reply_seconds": {"hard": 20}, "error_event_rate": '
        '{"target": 0.01, "hard": 0.2}}',
    }
    result = _run_manage(["check"], {**PRODUCTION_ENV, **env})
    assert result.returncode == 0, result.stderr


def test_settings_check_against_the_rollouts_own_names():
    assert set(base.ROLLOUT_MODES) == set(Mode.values)
    assert set(base.ROLLOUT_DEMOTION_TARGETS) == set(DEMOTION_TARGETS)
    assert set(base.ROLLOUT_GATE_THRESHOLDS) == set(GATE_SPECS)
