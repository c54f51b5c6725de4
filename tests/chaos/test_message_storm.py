"""Storms against a live server with tight, short rate limits.

Message storm: many visitors send at once, each message with its own client_message_id,
retrying after 429 (waiting Retry-After) and after network errors (some first attempts
are cut off by a tiny read timeout while the server goes on; some messages are sent
twice at once, like a double click). Then: 429s happened, nothing but 200/201/429 came
back, and every message is stored exactly once, with the id its acknowledgements named.

Which stored messages must have been acknowledged? A message whose request was cut off
is stored without the client knowing; only its retry acknowledges it. So "stored but
never acknowledged" is sound only when every client kept retrying until acknowledged,
and that is what these clients do (bounded in time): the test asserts none gave up, and
then the stored set equals the acknowledged set. A 429 is decided before anything is
written, so refused requests store nothing.

Config + init storm: many threads from one address; every init that answered 200 made
exactly one session and conversation, and no more configs succeeded than the per-second
limit allows.
"""

from __future__ import annotations

import math
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pytest
from django.db.models import Count

from crm.models import Conversation, Message
from webchat.models import WebChatSession

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

API = "/api/webchat/v1/"
ORIGIN = "https://shop.example.com"
VISITORS = 10
MESSAGES_PER_VISITOR = 6
DEADLINE_SECONDS = 90.0  # a bound for the whole storm, far above what it needs
MAX_ATTEMPTS = 60
CUT_OFF = httpx.Timeout(10.0, read=0.001)  # the server goes on; the client hangs up
NORMAL = httpx.Timeout(30.0)
ALLOWED_STATUSES = {200, 201, 429}


def _limits(**routes: dict[str, str]) -> dict[str, dict[str, str]]:
    generous = "10000/s"
    base = {
        "config": {"ip": generous, "site": generous},
        "init": {"ip": generous, "site": generous},
        "messages_post": {"ip": generous, "site": generous, "session": generous},
        "messages_get": {"ip": generous, "site": generous, "session": generous},
        "events": {"ip": generous, "site": generous, "session": generous},
    }
    return {**base, **routes}


@dataclass
class Log:
    """What every client saw; shared by threads (appends under a lock)."""

    statuses: Counter = field(default_factory=Counter)
    bad_429s: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    network_errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def saw(self, response: httpx.Response) -> None:
        with self.lock:
            self.statuses[response.status_code] += 1
            if response.status_code == 429 and not _is_clean_429(response):
                self.bad_429s.append(f"{response.headers} {response.text[:200]}")
            elif response.status_code not in ALLOWED_STATUSES:
                self.unexpected.append(f"{response.status_code} {response.text[:300]}")

    def network_error(self) -> None:
        with self.lock:
            self.network_errors += 1


def _is_clean_429(response: httpx.Response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    retry_after = response.headers.get("Retry-After", "")
    return (
        retry_after.isdigit()
        and int(retry_after) >= 1
        and set(body) == {"error"}
        and body["error"].get("code") == "rate_limited"
        and bool(body["error"].get("message"))
    )


def _wait_after_429(response: httpx.Response) -> None:
    # Honour Retry-After (capped: the windows here are a second or two) plus jitter, so
    # the visitors do not all come back in the same millisecond.
    retry_after = min(float(response.headers.get("Retry-After", "1")), 2.0)
    time.sleep(retry_after * random.uniform(0.5, 1.0))


# --- message storm ------------------------------------------------------------------------


@dataclass
class Outcome:
    client_message_id: str
    acked_ids: set[int] = field(default_factory=set)
    created_acks: int = 0  # answers 201: the message was stored by that request
    gave_up: bool = False


def _send_until_acked(
    client: httpx.Client,
    token: str,
    outcome: Outcome,
    log: Log,
    *,
    cut_first: bool,
    deadline: float,
) -> None:
    """POST one message until it is acknowledged (201/200), as the widget retries."""
    headers = {"Origin": ORIGIN, "Authorization": f"Bearer {token}"}
    body = {
        "text": f"storm {outcome.client_message_id}",
        "client_message_id": outcome.client_message_id,
    }
    for attempt in range(MAX_ATTEMPTS):
        if time.monotonic() > deadline:
            break
        timeout = CUT_OFF if cut_first and attempt == 0 else NORMAL
        try:
            response = client.post(API + "messages", json=body, headers=headers, timeout=timeout)
        except httpx.TransportError:
            log.network_error()
            time.sleep(0.05)
            continue
        log.saw(response)
        if response.status_code in (200, 201):
            with log.lock:
                outcome.acked_ids.add(response.json()["message"]["id"])
                outcome.created_acks += response.status_code == 201
            return
        if response.status_code != 429:
            return  # recorded as unexpected; retrying would not change it
        _wait_after_429(response)
    outcome.gave_up = True


def _init_session(client: httpx.Client, site_key: str) -> str:
    config = client.get(API + "config", params={"site_key": site_key}, headers={"Origin": ORIGIN})
    assert config.status_code == 200, config.text
    init = client.post(
        API + "init",
        json={"site_key": site_key, "challenge": config.json()["challenge"]},
        headers={"Origin": ORIGIN},
    )
    assert init.status_code == 200, init.text
    return init.json()["session_token"]


def _visitor(
    base_url: str, site_key: str, log: Log, outcomes: list[Outcome], deadline: float
) -> None:
    with httpx.Client(base_url=base_url, timeout=NORMAL) as client:
        token = _init_session(client, site_key)
        for number in range(MESSAGES_PER_VISITOR):
            outcome = Outcome(client_message_id=f"storm-{uuid.uuid4().hex}")
            with log.lock:
                outcomes.append(outcome)
            twin = None
            if number % 3 == 1:
                # A double click: the same message from a second connection at the same time.
                twin = threading.Thread(
                    target=_twin_send, args=(base_url, token, outcome, log, deadline)
                )
                twin.start()
            _send_until_acked(
                client, token, outcome, log, cut_first=number % 4 == 2, deadline=deadline
            )
            if twin is not None:
                twin.join(timeout=DEADLINE_SECONDS)


def _twin_send(base_url: str, token: str, outcome: Outcome, log: Log, deadline: float) -> None:
    with httpx.Client(base_url=base_url, timeout=NORMAL) as client:
        _send_until_acked(client, token, outcome, log, cut_first=False, deadline=deadline)


def _run_threads(targets: list[Callable[[], None]], timeout: float) -> None:
    failures: list[BaseException] = []

    def guarded(target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=guarded, args=(t,), daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not [t for t in threads if t.is_alive()], "storm threads still running past the bound"
    if failures:
        raise failures[0]


def _wait_until_server_done(quiet: float = 0.5, bound: float = 30.0) -> None:
    """A request whose client hung up goes on in the live server (with its AI reply, run
    in-process here): wait until none is owed and the transcript stopped growing, so
    nothing writes after this test while the database is reset for the next one."""
    deadline = time.monotonic() + bound
    last, still_since = None, time.monotonic()
    while time.monotonic() < deadline:
        now = (
            Message.objects.count(),
            Conversation.objects.filter(pending_reply_since__isnull=False).count(),
        )
        if now != last:
            last, still_since = now, time.monotonic()
        elif now[1] == 0 and time.monotonic() - still_since >= quiet:
            return
        time.sleep(0.05)
    pytest.fail(f"the live server was still answering {bound:g} s after the storm: {last}")


@pytest.fixture
def storm_limits(settings):
    """Tight limits with 1-2 s windows (live_server runs in this process, so they apply)."""
    settings.WEBCHAT_RATE_LIMITS = _limits(
        messages_post={"ip": "25/s", "site": "10000/s", "session": "2/2s"}
    )


def test_message_storm_stores_every_acknowledged_message_exactly_once(
    live_server, site, storm_limits
):
    log = Log()
    outcomes: list[Outcome] = []
    deadline = time.monotonic() + DEADLINE_SECONDS
    _run_threads(
        [
            lambda: _visitor(live_server.url, site.site_key, log, outcomes, deadline)
            for _ in range(VISITORS)
        ],
        timeout=DEADLINE_SECONDS + 30,
    )
    _wait_until_server_done()

    assert not log.unexpected, log.unexpected[:5]
    assert not log.bad_429s, log.bad_429s[:3]
    assert set(log.statuses) <= ALLOWED_STATUSES, log.statuses
    assert log.statuses[429] > 0, f"no 429 in the storm: {log.statuses}"
    assert log.network_errors > 0, (
        "no request was cut off: the retry-after-timeout path is untested"
    )
    assert not [o for o in outcomes if o.gave_up], (
        "a client gave up before its message was acknowledged"
    )
    assert len(outcomes) == VISITORS * MESSAGES_PER_VISITOR

    inbound = Message.objects.filter(direction="inbound", client_message_id__startswith="storm-")
    stored = dict(inbound.values_list("client_message_id", "id"))
    duplicates = (
        Message.objects.exclude(client_message_id=None)
        .values("conversation_id", "client_message_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
    )
    assert not list(duplicates)
    assert inbound.count() == len(stored) == len(outcomes)
    for outcome in outcomes:
        # Every acknowledgement (201 or 200, first try or retry, either twin) names the
        # one stored row, and exactly one request created it (unless that request was cut
        # off before its 201 arrived).
        assert outcome.acked_ids == {stored[outcome.client_message_id]}, outcome
        assert outcome.created_acks <= 1, outcome
    # Nothing stored that no client sent and had acknowledged.
    assert set(stored) == {o.client_message_id for o in outcomes}


# --- config + init storm ------------------------------------------------------------------


CONFIG_IP_PER_SECOND = 8
INIT_IP_PER_SECOND = 4
CONFIG_INIT_SECONDS = 3.0
CONFIG_INIT_THREADS = 8


@dataclass
class InitTally:
    config_ok: int = 0
    init_ok: int = 0
    conversation_ids: list[int] = field(default_factory=list)


def _config_init_loop(
    base_url: str, site_key: str, log: Log, tally: InitTally, until: float
) -> None:
    headers = {"Origin": ORIGIN}
    with httpx.Client(base_url=base_url, timeout=NORMAL) as client:
        while time.monotonic() < until:
            config = client.get(API + "config", params={"site_key": site_key}, headers=headers)
            log.saw(config)
            if config.status_code != 200:
                time.sleep(0.05)  # a short pause: this is a storm, not a polite widget
                continue
            with log.lock:
                tally.config_ok += 1
            init = client.post(
                API + "init",
                json={"site_key": site_key, "challenge": config.json()["challenge"]},
                headers=headers,
            )
            log.saw(init)
            if init.status_code == 200:
                with log.lock:
                    tally.init_ok += 1
                    tally.conversation_ids.append(init.json()["conversation_id"])


def test_config_and_init_storm_from_one_address(live_server, site, settings):
    settings.WEBCHAT_RATE_LIMITS = _limits(
        config={"ip": f"{CONFIG_IP_PER_SECOND}/s", "site": "10000/s"},
        init={"ip": f"{INIT_IP_PER_SECOND}/s", "site": "10000/s"},
    )
    log = Log()
    tally = InitTally()
    started = time.monotonic()
    until = started + CONFIG_INIT_SECONDS
    _run_threads(
        [
            lambda: _config_init_loop(live_server.url, site.site_key, log, tally, until)
            for _ in range(CONFIG_INIT_THREADS)
        ],
        timeout=CONFIG_INIT_SECONDS + 60,
    )
    elapsed = time.monotonic() - started

    assert not log.unexpected, log.unexpected[:5]
    assert not log.bad_429s, log.bad_429s[:3]
    assert log.statuses[429] > 0, log.statuses
    assert tally.init_ok > 0
    # Fixed one-second windows: at most the limit in each second the storm touched.
    seconds_touched = math.ceil(elapsed) + 1
    assert tally.config_ok <= CONFIG_IP_PER_SECOND * seconds_touched, (tally.config_ok, elapsed)
    assert tally.init_ok <= INIT_IP_PER_SECOND * seconds_touched, (tally.init_ok, elapsed)
    # Each successful init made exactly one session and one conversation; refused ones none.
    assert len(set(tally.conversation_ids)) == tally.init_ok
    assert WebChatSession.objects.filter(site=site).count() == tally.init_ok
    assert Conversation.objects.filter(tenant=site.tenant).count() == tally.init_ok
