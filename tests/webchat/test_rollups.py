import io
from datetime import UTC, datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.utils import timezone

from crm.models import Contact, Message
from tests.factories import MessageFactory
from webchat.models import EventType, WebChatEvent, WebChatHourlyRollup, WebChatSession
from webchat.rollups import redact, rollups_refresh, visitor_data_purge

pytestmark = pytest.mark.django_db


def test_rollup_counts_sessions_messages_events_and_incidents(widget_client, site):
    widget_client.init()
    widget_client.send("hello")
    widget_client.send("what is your return policy")
    widget_client.events([{"type": "widget_loaded"}, {"type": "error", "data": {"m": "x"}}])
    widget_client.config(origin="https://evil.test")
    rollups_refresh(since=timezone.now() - timedelta(hours=1))
    row = WebChatHourlyRollup.objects.get(site=site)
    assert row.tenant_id == site.tenant_id
    assert row.sessions == 1
    assert row.conversations == 1
    assert row.messages_in == 2
    outbound = Message.objects.filter(direction="outbound").count()
    assert row.messages_out == outbound >= 2
    assert row.widget_events == 2
    assert row.error_events == 1
    assert row.origin_denied == 1
    # recomputing is idempotent
    rollups_refresh(since=timezone.now() - timedelta(hours=1))
    assert WebChatHourlyRollup.objects.get(site=site).messages_in == 2


def test_rollup_with_no_data_writes_nothing():
    assert rollups_refresh(since=timezone.now() - timedelta(hours=2)) == 0
    assert not WebChatHourlyRollup.objects.exists()


def _ten_hours_ago(widget_client, site):
    """A conversation whose rows are ten hours old (the beat was down since)."""
    widget_client.init()
    widget_client.send("hello")
    then = timezone.now() - timedelta(hours=10)
    WebChatSession.objects.filter(site=site).update(created_at=then)
    Message.objects.all().update(created_at=then)


def test_after_an_outage_the_beat_recomputes_every_hour_since_its_last_run(widget_client, site):
    from django.core.cache import cache

    from webchat.rollups import COVERED_UNTIL_KEY, rollups_refresh_due

    _ten_hours_ago(widget_client, site)
    cache.set(COVERED_UNTIL_KEY, timezone.now() - timedelta(hours=11))
    assert rollups_refresh_due() >= 1
    assert WebChatHourlyRollup.objects.get(site=site).messages_in == 1
    assert cache.get(COVERED_UNTIL_KEY) > timezone.now() - timedelta(minutes=1)


def test_a_catch_up_cut_short_keeps_the_hours_it_did(widget_client, site, monkeypatch):
    """A catch-up after a long outage can outlast the task's time limit. The hours it did
    stay done and the mark moves past them, so the next run carries on: with one
    transaction for the whole window, every run started over and ran out of time again."""
    from celery.exceptions import SoftTimeLimitExceeded
    from django.core.cache import cache

    from webchat.rollups import COVERED_UNTIL_KEY, rollups_refresh_due

    _ten_hours_ago(widget_client, site)
    widget_client.send("still there?")  # and one in the current hour
    cache.set(COVERED_UNTIL_KEY, timezone.now() - timedelta(hours=11))
    # each step writes its rows in one upsert statement (a single row per step here)
    upsert = WebChatHourlyRollup.objects.bulk_create
    limit = {"rows": 1}

    def upsert_until_the_time_limit(rows, **kwargs):
        if limit["rows"] == 0:
            raise SoftTimeLimitExceeded()
        limit["rows"] -= len(rows)
        return upsert(rows, **kwargs)

    monkeypatch.setattr(WebChatHourlyRollup.objects, "bulk_create", upsert_until_the_time_limit)
    with pytest.raises(SoftTimeLimitExceeded):
        rollups_refresh_due()
    [row] = WebChatHourlyRollup.objects.all()
    assert row.hour < timezone.now() - timedelta(hours=9)  # the old hour was kept
    assert cache.get(COVERED_UNTIL_KEY) > row.hour
    limit["rows"] = 100
    assert rollups_refresh_due() >= 1
    assert sorted(WebChatHourlyRollup.objects.values_list("messages_in", flat=True)) == [1, 1]


def test_without_a_mark_the_beat_recomputes_the_last_two_hours(widget_client, site):
    from django.core.cache import cache

    from webchat.rollups import COVERED_UNTIL_KEY, rollups_refresh_due

    _ten_hours_ago(widget_client, site)
    cache.delete(COVERED_UNTIL_KEY)
    assert rollups_refresh_due() == 0
    assert not WebChatHourlyRollup.objects.exists()


def test_the_refresh_rollups_command(widget_client, site):
    from django.core.management import CommandError, call_command

    _ten_hours_ago(widget_client, site)
    call_command("refresh_rollups", "--hours", "12")
    assert WebChatHourlyRollup.objects.get(site=site).messages_in == 1
    WebChatHourlyRollup.objects.all().delete()
    since = (timezone.now() - timedelta(hours=11)).strftime("%Y-%m-%dT%H:%M")
    out = io.StringIO()
    call_command("refresh_rollups", "--since", since, stdout=out)
    assert "1 hourly rows recomputed" in out.getvalue()
    assert WebChatHourlyRollup.objects.get(site=site).messages_in == 1
    for bad in (["--since", "yesterday"], ["--hours", "0"], ["--since", "2999-01-01T00:00"]):
        with pytest.raises(CommandError):
            call_command("refresh_rollups", *bad)


def test_refresh_rollups_since_with_an_offset_recomputes_whole_utc_hours(widget_client, site):
    """10:00+05:30 is 04:30 UTC: the 04:00 UTC row is recomputed from 04:00, not from 04:30
    (which would overwrite it with half an hour of data)."""
    from django.core.management import call_command

    widget_client.init()
    widget_client.send("hello")
    hour = timezone.now().astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    hour -= timedelta(hours=3)
    WebChatSession.objects.filter(site=site).update(created_at=hour + timedelta(minutes=10))
    Message.objects.all().update(created_at=hour + timedelta(minutes=10))
    india = dt_timezone(timedelta(hours=5, minutes=30))
    since = (hour + timedelta(minutes=30)).astimezone(india)
    assert since.minute == 0  # on the hour in local time, half past in UTC
    out = io.StringIO()
    call_command("refresh_rollups", "--since", since.isoformat(timespec="minutes"), stdout=out)
    row = WebChatHourlyRollup.objects.get(site=site)
    assert row.hour == hour
    assert (row.sessions, row.messages_in) == (1, 1)
    assert f"since {hour:%Y-%m-%d %H}:00 UTC" in out.getvalue()


@pytest.mark.parametrize(
    ("since", "message"),
    [
        ("2026-02-30T10:00", "not a valid time"),
        ("2026-11-30T10:00+25:00", "not a valid time"),
        ("yesterday", "ISO 8601"),
        ("", "ISO 8601"),
        ("0001-01-01T00:00+05:30", "at most 9600 hours"),
        ("9999-12-31T23:59-05:00", "in the future"),
    ],
)
def test_refresh_rollups_refuses_a_bad_since_without_a_traceback(since, message):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match=message):
        call_command("refresh_rollups", "--since", since)
    assert not WebChatHourlyRollup.objects.exists()


def test_refresh_rollups_since_spans_at_most_as_long_as_hours():
    from django.core.management import CommandError, call_command

    too_old = timezone.now() - timedelta(hours=24 * 400 + 2)
    with pytest.raises(CommandError, match="at most 9600 hours"):
        call_command("refresh_rollups", "--since", too_old.isoformat())
    out = io.StringIO()
    recent = timezone.now() - timedelta(hours=24 * 400 - 2)
    call_command("refresh_rollups", "--since", recent.isoformat(), stdout=out)
    assert "0 hourly rows recomputed" in out.getvalue()


def test_redact():
    assert redact("mail me at jo.doe+x@example.co.uk or +44 20 7946 0958 pls") == (
        "mail me at [email] or [phone] pls"
    )
    assert redact("order 12345 please") == "order 12345 please"


def test_purge_anonymizes_only_old_data_of_that_tenant(widget_client, site, tenant, other_tenant):
    widget_client.init(page={"url": "https://shop.example.com/x", "referrer": "https://r.test/"})
    widget_client.send("my email is jo@example.com")
    widget_client.events([{"type": "widget_loaded"}])
    session = WebChatSession.objects.get()
    contact = Contact.objects.create(tenant=tenant, name="Jo", email="jo@example.com")
    foreign = MessageFactory(conversation__tenant=other_tenant, text="call +1 555 123 4567 now")
    # nothing is old enough yet
    assert visitor_data_purge(tenant=tenant) == {
        "sessions": 0,
        "contacts": 0,
        "messages": 0,
        "events": 0,
    }

    later = timezone.now() + timedelta(days=tenant.pii_retention_days + 1)

    counts = visitor_data_purge(tenant=tenant, now=later)
    assert counts["sessions"] == 1
    assert counts["contacts"] == 1
    assert counts["messages"] >= 1
    session.refresh_from_db()
    assert (session.page_url, session.referrer, session.visitor_id, session.ip_hash) == (
        "",
        "",
        "",
        "",
    )
    assert session.anonymized_at is not None
    contact.refresh_from_db()
    assert (contact.name, contact.email) == ("", "")
    inbound = Message.objects.get(tenant=tenant, direction="inbound")
    assert inbound.text == "my email is [email]"
    assert not WebChatEvent.objects.filter(tenant=tenant, type=EventType.WIDGET_LOADED).exists()
    foreign.refresh_from_db()
    assert foreign.text == "call +1 555 123 4567 now"
    # running again changes nothing more
    assert visitor_data_purge(tenant=tenant, now=later) == {
        "sessions": 0,
        "contacts": 0,
        "messages": 0,
        "events": 0,
    }


def _age(days: int) -> None:
    """Push every message `days` into the past."""
    Message.objects.update(created_at=timezone.now() - timedelta(days=days))


def test_purge_redacts_bot_and_agent_replies_too(tenant):
    from bots.services import DEFAULT_EMAIL_THANKS
    from tests.factories import ConversationFactory

    conversation = ConversationFactory(tenant=tenant)
    inbound = MessageFactory(conversation=conversation, text="jo@example.com")
    thanks = MessageFactory(
        conversation=conversation,
        direction="outbound",
        sender_type="bot",
        text=DEFAULT_EMAIL_THANKS.replace("{email}", "jo@example.com"),
    )
    agent = MessageFactory(
        conversation=conversation,
        direction="outbound",
        sender_type="agent",
        text="Call me on +44 20 7946 0958",
    )
    _age(tenant.pii_retention_days + 1)

    assert visitor_data_purge(tenant=tenant)["messages"] == 3
    for message in (inbound, thanks, agent):
        message.refresh_from_db()
        assert message.metadata["redacted"] is True
    assert inbound.text == "[email]"
    assert thanks.text == "Thanks! We'll be in touch at [email]."
    assert agent.text == "Call me on [phone]"
    # the conversation and its messages stay, for reporting
    assert conversation.messages.count() == 3
    assert visitor_data_purge(tenant=tenant)["messages"] == 0


def test_purge_redacts_messages_in_batches(tenant, other_tenant, django_assert_max_num_queries):
    from crm.models import Direction, SenderType
    from tests.factories import ConversationFactory

    conversation = ConversationFactory(tenant=tenant)
    Message.objects.bulk_create(
        Message(
            tenant=tenant,
            conversation=conversation,
            direction=Direction.INBOUND if n % 2 else Direction.OUTBOUND,
            sender_type=SenderType.VISITOR if n % 2 else SenderType.AGENT,
            text=f"message {n}: reach me at visitor{n}@example.com",
            metadata={"n": n},
        )
        for n in range(1000)
    )
    foreign = MessageFactory(conversation__tenant=other_tenant, text="mine@example.com")
    _age(tenant.pii_retention_days + 1)

    # 1,000 messages: a few selects and bulk updates, not one UPDATE per message
    with django_assert_max_num_queries(12):
        counts = visitor_data_purge(tenant=tenant)
    assert counts["messages"] == 1000
    rows = Message.objects.filter(tenant=tenant)
    assert not rows.filter(text__contains="@example.com").exists()
    assert rows.filter(metadata__redacted=True).count() == 1000
    assert rows.get(metadata__n=7).text == "message 7: reach me at [email]"
    assert rows.get(metadata__n=7).metadata == {"n": 7, "redacted": True}
    foreign.refresh_from_db()
    assert foreign.text == "mine@example.com"
    with django_assert_max_num_queries(6):
        assert visitor_data_purge(tenant=tenant)["messages"] == 0


def test_purge_keeps_the_progress_of_a_run_that_is_cut_short(tenant):
    from tests.factories import ConversationFactory

    conversation = ConversationFactory(tenant=tenant)
    for n in range(5):
        MessageFactory(conversation=conversation, text=f"me{n}@example.com")
    _age(tenant.pii_retention_days + 1)

    assert visitor_data_purge(tenant=tenant, batch_size=2, max_batches=2)["messages"] == 4
    assert visitor_data_purge(tenant=tenant, batch_size=2, max_batches=2)["messages"] == 1
    assert not Message.objects.filter(text__contains="@").exists()
    assert visitor_data_purge(tenant=tenant, batch_size=2)["messages"] == 0


def test_sessions_and_contacts_are_anonymized_in_batches_too(tenant):
    """A tenant with a huge backlog (its retention just lowered) makes progress every run,
    even when the run is cut short: no unbounded UPDATE to be rolled back each hour."""
    from tests.factories.webchat import WebChatSessionFactory

    old = timezone.now() - timedelta(days=tenant.pii_retention_days + 1)
    for _ in range(5):
        WebChatSessionFactory(site__tenant=tenant, last_seen_at=old, user_agent="Firefox")
        Contact.objects.create(tenant=tenant, name="Jo", email="x@example.com")
    Contact.objects.update(updated_at=old)
    first = visitor_data_purge(tenant=tenant, batch_size=2, max_batches=1)
    assert (first["sessions"], first["contacts"]) == (2, 2)
    assert WebChatSession.objects.filter(anonymized_at__isnull=True).count() == 3
    rest = visitor_data_purge(tenant=tenant, batch_size=2)
    assert (rest["sessions"], rest["contacts"]) == (3, 3)
    assert not WebChatSession.objects.exclude(user_agent="").exists()
    assert not Contact.objects.exclude(email="").exists()


def test_the_beat_task_queues_one_purge_per_tenant(tenant, other_tenant, settings):
    from webchat.tasks import purge_tenant_visitor_data, purge_visitor_data

    settings.RETENTION_MAX_BATCHES = 1
    mine = MessageFactory(conversation__tenant=tenant, text="me@example.com")
    theirs = MessageFactory(conversation__tenant=other_tenant, text="them@example.com")
    _age(400)

    assert purge_visitor_data() == 2
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert (mine.text, theirs.text) == ("[email]", "[email]")
    assert purge_tenant_visitor_data(tenant_id=tenant.pk)["messages"] == 0
    assert purge_tenant_visitor_data(tenant_id=10**9) == {}
    assert purge_tenant_visitor_data.soft_time_limit and purge_tenant_visitor_data.time_limit
    assert settings.CELERY_BEAT_SCHEDULE["webchat-retention"]["task"] == (
        "webchat.tasks.purge_visitor_data"
    )


def _busy_sites(n: int, *, tenant) -> None:
    """`n` sites of `tenant`, each with a session, a message and an event in each of the
    last three hours (the beat's 2-hour window touches three hour rows per site)."""
    from tests.factories.webchat import (
        WebChatEventFactory,
        WebChatSessionFactory,
        WebChatSiteFactory,
    )

    for _ in range(n):
        site = WebChatSiteFactory(tenant=tenant)
        for hours_ago in range(3):
            then = timezone.now() - timedelta(hours=hours_ago, minutes=1)
            session = WebChatSessionFactory(site=site)
            MessageFactory(conversation=session.conversation)
            WebChatEventFactory(session=session)
            WebChatSession.objects.filter(pk=session.pk).update(created_at=then)
            Message.objects.filter(conversation=session.conversation).update(created_at=then)
            WebChatEvent.objects.filter(session=session).update(created_at=then)


def test_refresh_writes_every_site_hour_in_a_fixed_number_of_queries(
    tenant, django_assert_max_num_queries
):
    """The beat refreshes every (site, hour) of the last two hours every five minutes:
    one read and one write per row made a run over thousands of sites outlast the task's
    time limit (about 1.6 ms a row here), and a catch-up step never finished at all."""
    since = timezone.now() - timedelta(hours=3)
    _busy_sites(3, tenant=tenant)
    with django_assert_max_num_queries(20) as few:
        assert rollups_refresh(since=since) == 9
    _busy_sites(27, tenant=tenant)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert rollups_refresh(since=since) == 90
    assert WebChatHourlyRollup.objects.count() == 90
    assert set(WebChatHourlyRollup.objects.values_list("messages_in", flat=True)) == {1}
    assert set(WebChatHourlyRollup.objects.values_list("widget_events", flat=True)) == {1}


# --- where the last run got to (Tenant.retention_marks) -------------------------------------

NOTHING_PURGED = {"sessions": 0, "contacts": 0, "messages": 0, "events": 0}


def _old_visitor_data(tenant, n: int, *, days: int | None = None) -> None:
    """`n` sessions, contacts, events and messages of `tenant`, `days` old (just past its
    retention period unless given)."""
    from tests.factories.webchat import WebChatEventFactory, WebChatSessionFactory

    then = timezone.now() - timedelta(days=days or tenant.pii_retention_days + 1)
    for i in range(n):
        session = WebChatSessionFactory(site__tenant=tenant, last_seen_at=then)
        contact = Contact.objects.create(tenant=tenant, email=f"v{i}@example.com")
        session.conversation.contact = contact
        session.conversation.last_message_at = then
        session.conversation.save(update_fields=["contact", "last_message_at"])
        MessageFactory(conversation=session.conversation, text=f"v{i}@example.com")
        WebChatEventFactory(session=session)
    for model in (Contact, Message, WebChatEvent):
        model.objects.filter(tenant=tenant).update(created_at=then, updated_at=then)


def _marks(tenant) -> dict:
    from tenants.models import Tenant

    return Tenant.objects.get(pk=tenant.pk).retention_marks


def test_a_run_with_nothing_new_past_the_cutoff_starts_at_the_mark(
    tenant, django_assert_max_num_queries
):
    """The next run looks only at rows between where the last one finished and its own
    cutoff (an index range), not at every row it did before: a row behind the mark is not
    read again, which is what ends a run with nothing to do at once."""
    _old_visitor_data(tenant, 3)
    assert visitor_data_purge(tenant=tenant) == {
        "sessions": 3,
        "contacts": 3,
        "messages": 3,
        "events": 3,
    }
    cutoff = timezone.now() - timedelta(days=tenant.pii_retention_days)
    marks = _marks(tenant)
    assert set(marks) == {"sessions", "contacts", "messages", "events"}
    for mark in marks.values():
        assert cutoff - timedelta(minutes=1) < datetime.fromisoformat(mark["done_before"]) <= cutoff
    # rows behind the marks that (unlike any real row) look undone: nobody reads them again
    message = Message.objects.filter(tenant=tenant).first()
    Message.objects.filter(pk=message.pk).update(text="back@example.com", metadata={})
    session = WebChatSession.objects.filter(tenant=tenant).first()
    WebChatSession.objects.filter(pk=session.pk).update(anonymized_at=None, user_agent="Firefox")

    with django_assert_max_num_queries(6):
        assert visitor_data_purge(tenant=tenant) == NOTHING_PURGED
    message.refresh_from_db()
    session.refresh_from_db()
    assert (message.text, session.user_agent) == ("back@example.com", "Firefox")


def test_a_second_run_costs_the_same_few_queries_however_many_rows_are_old(
    tenant, other_tenant, django_assert_max_num_queries
):
    _old_visitor_data(tenant, 2)
    _old_visitor_data(other_tenant, 40)
    costs = []
    for owner in (tenant, other_tenant):
        visitor_data_purge(tenant=owner)
        with django_assert_max_num_queries(6) as second:
            assert visitor_data_purge(tenant=owner) == NOTHING_PURGED
        costs.append(len(second.captured_queries))
    assert costs[0] == costs[1]


def test_a_shorter_retention_period_purges_from_the_mark_on(tenant):
    """The marks are points in time, not periods: a shorter period moves the cutoff
    forward and the next run covers what lies between the mark and the new cutoff."""
    tenant.pii_retention_days = 90
    tenant.save(update_fields=["pii_retention_days"])
    _old_visitor_data(tenant, 2, days=60)  # kept under 90 days, due under 30
    assert visitor_data_purge(tenant=tenant) == NOTHING_PURGED
    assert set(_marks(tenant)) == {"sessions", "contacts", "messages", "events"}

    tenant.pii_retention_days = 30
    tenant.save(update_fields=["pii_retention_days"])
    assert visitor_data_purge(tenant=tenant) == {
        "sessions": 2,
        "contacts": 2,
        "messages": 2,
        "events": 2,
    }
    assert not Message.objects.filter(text__contains="@example.com").exists()
    assert not WebChatSession.objects.filter(anonymized_at__isnull=True).exists()
    assert not Contact.objects.exclude(email="").exists()


def test_a_longer_retention_period_has_nothing_to_do_and_keeps_the_mark(
    tenant, django_assert_max_num_queries
):
    tenant.pii_retention_days = 30
    tenant.save(update_fields=["pii_retention_days"])
    _old_visitor_data(tenant, 2, days=60)
    assert visitor_data_purge(tenant=tenant)["messages"] == 2
    marks = _marks(tenant)

    tenant.pii_retention_days = 90
    tenant.save(update_fields=["pii_retention_days"])
    # every cutoff is behind its mark: nothing to look at (the daily contacts sweep aside)
    with django_assert_max_num_queries(2):
        assert visitor_data_purge(tenant=tenant) == NOTHING_PURGED
    assert _marks(tenant) == marks

    tenant.pii_retention_days = 30
    tenant.save(update_fields=["pii_retention_days"])
    MessageFactory(conversation__tenant=tenant, text="new@example.com")
    assert visitor_data_purge(tenant=tenant) == NOTHING_PURGED
    assert visitor_data_purge(tenant=tenant, now=timezone.now() + timedelta(days=31)) == {
        **NOTHING_PURGED,
        "messages": 1,
    }


def test_a_run_cut_short_moves_no_mark_and_the_next_one_misses_nothing(tenant):
    """Batches go by id, and ids are not in created_at order: a run stopped by its batch
    budget has not seen every row before any point in time, so its kind keeps its mark
    (the next run carries on past what is done); only a pass that ran out of rows moves
    it."""
    from tests.factories import ConversationFactory

    conversation = ConversationFactory(tenant=tenant)
    messages = [
        MessageFactory(conversation=conversation, text=f"m{n}@example.com") for n in range(5)
    ]
    now = timezone.now()
    days = tenant.pii_retention_days
    # the newest ids are the oldest messages
    for age, message in enumerate(messages):
        Message.objects.filter(pk=message.pk).update(
            created_at=now - timedelta(days=days + 5 - age)
        )

    assert visitor_data_purge(tenant=tenant, batch_size=2, max_batches=1)["messages"] == 2
    assert "messages" not in _marks(tenant)
    assert visitor_data_purge(tenant=tenant, batch_size=2, max_batches=1)["messages"] == 2
    assert "messages" not in _marks(tenant)
    # the last batch is short: this pass saw every row, and moves the mark
    assert visitor_data_purge(tenant=tenant, batch_size=2, max_batches=1)["messages"] == 1
    assert "messages" in _marks(tenant)
    assert not Message.objects.filter(text__contains="@example.com").exists()
    assert visitor_data_purge(tenant=tenant, batch_size=2)["messages"] == 0


def test_a_run_whose_budget_ends_with_the_rows_moves_the_mark_next_time(tenant):
    from tests.factories import ConversationFactory

    conversation = ConversationFactory(tenant=tenant)
    for n in range(4):
        MessageFactory(conversation=conversation, text=f"m{n}@example.com")
    _age(tenant.pii_retention_days + 1)
    # four rows, two full batches: the pass cannot know it saw them all
    assert visitor_data_purge(tenant=tenant, batch_size=2, max_batches=2)["messages"] == 4
    assert "messages" not in _marks(tenant)
    assert visitor_data_purge(tenant=tenant, batch_size=2, max_batches=2)["messages"] == 0
    assert "messages" in _marks(tenant)


def test_a_mark_never_passes_the_real_cutoff(tenant):
    """A run told a later `now` covers more, but its marks stop at today's cutoff: rows
    written from now on must not land behind them."""
    later = timezone.now() + timedelta(days=tenant.pii_retention_days + 1)
    assert visitor_data_purge(tenant=tenant, now=later) == NOTHING_PURGED
    message = MessageFactory(conversation__tenant=tenant, text="new@example.com")
    assert visitor_data_purge(tenant=tenant, now=later)["messages"] == 1
    message.refresh_from_db()
    assert message.text == "[email]"


def test_a_contact_whose_conversation_goes_quiet_is_anonymized_by_the_run_past_it(tenant):
    """A contact comes due when its own row and all its conversations are past the
    cutoff: the run finds it through a conversation whose last message crossed the
    cutoff since the mark, however long ago the contact itself changed."""
    from tests.factories import ConversationFactory

    days = tenant.pii_retention_days
    contact = Contact.objects.create(tenant=tenant, name="Jo", email="jo@example.com")
    Contact.objects.filter(pk=contact.pk).update(updated_at=timezone.now() - timedelta(days=400))
    ConversationFactory(
        tenant=tenant, contact=contact, last_message_at=timezone.now() - timedelta(days=days - 2)
    )
    assert visitor_data_purge(tenant=tenant)["contacts"] == 0
    assert "contacts" in _marks(tenant)
    tomorrow, in_three_days = (timezone.now() + timedelta(days=n) for n in (1, 3))
    assert visitor_data_purge(tenant=tenant, now=tomorrow)["contacts"] == 0
    assert visitor_data_purge(tenant=tenant, now=in_three_days)["contacts"] == 1
    contact.refresh_from_db()
    assert (contact.name, contact.email) == ("", "")


def test_a_contact_that_loses_its_conversation_is_anonymized_by_the_daily_sweep(tenant):
    """A conversation can move to another contact (a lead signs in, a visitor gives
    another email): the contact it left may be due at once, with nothing of it in the
    next run's range. The contacts' run goes over every row again once a day."""
    from tests.factories import ConversationFactory

    lead = Contact.objects.create(tenant=tenant, name="Jo", email="jo@example.com")
    Contact.objects.filter(pk=lead.pk).update(updated_at=timezone.now() - timedelta(days=400))
    conversation = ConversationFactory(
        tenant=tenant, contact=lead, last_message_at=timezone.now() - timedelta(days=1)
    )
    assert visitor_data_purge(tenant=tenant)["contacts"] == 0
    user = Contact.objects.create(tenant=tenant, external_id="u-1")
    conversation.contact = user
    conversation.save(update_fields=["contact"])
    visitor_data_purge(tenant=tenant)

    swept_at = _sweep_due(tenant, "contacts")
    assert visitor_data_purge(tenant=tenant)["contacts"] == 1
    lead.refresh_from_db()
    assert (lead.name, lead.email) == ("", "")
    assert datetime.fromisoformat(_marks(tenant)["contacts"]["swept_at"]) > swept_at


def _sweep_due(tenant, kind: str) -> datetime:
    """Make `kind`'s daily sweep due, as a day after the last one; when that was."""
    from tenants.models import Tenant
    from tenants.retention import RESWEEP

    marks = _marks(tenant)
    swept_at = datetime.fromisoformat(marks[kind]["swept_at"])
    marks[kind]["swept_at"] = (swept_at - RESWEEP).isoformat()
    Tenant.objects.filter(pk=tenant.pk).update(retention_marks=marks)
    tenant.refresh_from_db()
    return swept_at
