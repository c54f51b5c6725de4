"""Per-tenant housekeeping tasks (the retention purges the beat fans out with
`queue_per_tenant`) run once at a time per (task, tenant): a copy that starts while
another still runs skips, on a Redis lock that outlives the task's hard time limit a
little and is released when the run ends, failures included."""

import threading

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.core.cache import cache
from django.db import connection as db_connection
from structlog.testing import capture_logs

from core.locks import lock_acquire, lock_release
from support import retention
from support import tasks as support_tasks
from tenants.tasks import per_tenant_lock_key
from tests.factories import TenantFactory
from webchat import tasks as webchat_tasks

PER_TENANT_TASKS = {
    "visitor-data": (webchat_tasks.purge_tenant_visitor_data, webchat_tasks, "visitor_data_purge"),
    "support-data": (support_tasks.purge_tenant_support_data, retention, "support_data_purge"),
}


@pytest.fixture(params=list(PER_TENANT_TASKS))
def purge(request, monkeypatch):
    """One of the per-tenant tasks, with its service wrapped to record the tenants it ran
    for (and, set `purge.hook`, to run something inside the service first)."""
    task, module, name = PER_TENANT_TASKS[request.param]
    real = getattr(module, name)

    class Purge:
        def __init__(self):
            self.task = task
            self.calls: list[int] = []
            self.hook = None

        def run(self, **kwargs):
            self.calls.append(kwargs["tenant"].pk)
            if self.hook is not None:
                self.hook(len(self.calls))
            return real(**kwargs)

    spy = Purge()
    monkeypatch.setattr(module, name, spy.run)
    return spy


def _events(logs, event):
    return [line for line in logs if line["event"] == event]


def test_a_copy_that_starts_while_another_runs_skips(tenant, purge):
    task = purge.task
    key = per_tenant_lock_key(task, tenant.pk)
    token = lock_acquire(key=key, seconds=60)  # another worker's run of the same task
    with capture_logs() as logs:
        assert task(tenant_id=tenant.pk) == {}
    assert purge.calls == []
    assert cache.get(key) == token  # the running copy's lock is left alone
    [skipped] = _events(logs, "tenants.per_tenant_task_skipped")
    assert (skipped["task"], skipped["tenant_id"]) == (task.name, tenant.pk)

    assert lock_release(key=key, token=token)  # that run ended
    counts = task(tenant_id=tenant.pk)
    assert purge.calls == [tenant.pk]
    assert counts and all(n == 0 for n in counts.values())
    assert cache.get(key) is None


def test_the_lock_is_per_task_and_per_tenant(tenant, other_tenant, purge):
    task = purge.task
    others = [t for t, _, _ in PER_TENANT_TASKS.values() if t.name != task.name]
    held = lock_acquire(key=per_tenant_lock_key(task, tenant.pk), seconds=60)
    try:
        assert task(tenant_id=other_tenant.pk)  # the same task for another tenant runs
        for other in others:  # and another task for this tenant
            assert other(tenant_id=tenant.pk)
        assert purge.calls == [other_tenant.pk]
    finally:
        lock_release(key=per_tenant_lock_key(task, tenant.pk), token=held)


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_runs_one_does_the_work_and_the_other_skips(purge):
    """Two workers: the first is inside the purge when the second starts."""
    tenant = TenantFactory()
    task = purge.task
    inside, go_on = threading.Event(), threading.Event()
    results = {}

    def hold_the_first(call: int) -> None:
        if call == 1:
            inside.set()
            assert go_on.wait(10)

    def first_worker() -> None:
        try:
            results["first"] = task(tenant_id=tenant.pk)
        except BaseException as exc:  # reported by the asserts below
            results["first"] = exc
        finally:
            db_connection.close()

    purge.hook = hold_the_first
    worker = threading.Thread(target=first_worker)
    worker.start()
    try:
        assert inside.wait(10), "the first run never reached the purge"
        with capture_logs() as logs:
            assert task(tenant_id=tenant.pk) == {}  # the second, while the first runs
        assert _events(logs, "tenants.per_tenant_task_skipped")
    finally:
        go_on.set()
        worker.join(10)
    assert not worker.is_alive()
    assert isinstance(results["first"], dict) and results["first"], results["first"]
    assert purge.calls == [tenant.pk]
    assert cache.get(per_tenant_lock_key(task, tenant.pk)) is None
    assert task(tenant_id=tenant.pk)  # free again: the next run works
    assert purge.calls == [tenant.pk, tenant.pk]


@pytest.mark.parametrize(
    "failure",
    [RuntimeError("database went away"), SoftTimeLimitExceeded()],
    ids=["error", "soft time limit"],
)
def test_the_lock_is_released_when_a_run_fails(tenant, purge, failure):
    def fail(call: int) -> None:
        if call == 1:
            raise failure

    purge.hook = fail
    with pytest.raises(type(failure)):
        purge.task(tenant_id=tenant.pk)
    assert cache.get(per_tenant_lock_key(purge.task, tenant.pk)) is None
    assert purge.task(tenant_id=tenant.pk)  # the next copy is not locked out
    assert purge.calls == [tenant.pk, tenant.pk]


def test_the_lock_expires_a_little_after_the_hard_time_limit(tenant, purge):
    """A worker killed mid-run (the hard time limit kills its process, no `finally`) leaves
    its lock behind: Redis drops it soon after the limit, so the next hour's run works."""
    task = purge.task
    key = per_tenant_lock_key(task, tenant.pk)
    redis = cache._cache.get_client(write=True)
    seen = {}

    def read_ttl(call: int) -> None:
        seen["ttl"] = redis.ttl(cache.make_key(key))

    purge.hook = read_ttl
    task(tenant_id=tenant.pk)
    assert task.soft_time_limit < task.time_limit < seen["ttl"] <= task.time_limit + 60


def test_a_run_whose_lock_expired_leaves_the_next_runs_lock_alone(tenant, purge):
    task = purge.task
    key = per_tenant_lock_key(task, tenant.pk)

    def lock_expires_and_another_run_starts(call: int) -> None:
        cache.delete(key)
        assert cache.add(key, "another-run", 60)

    purge.hook = lock_expires_and_another_run_starts
    with capture_logs() as logs:
        assert task(tenant_id=tenant.pk)
    assert cache.get(key) == "another-run"
    [lost] = _events(logs, "tenants.per_tenant_task_lock_lost")
    assert (lost["task"], lost["tenant_id"]) == (task.name, tenant.pk)


def test_a_deleted_tenant_counts_nothing_and_leaves_no_lock(db, purge):
    assert purge.task(tenant_id=10**9) == {}
    assert purge.calls == []
    assert cache.get(per_tenant_lock_key(purge.task, 10**9)) is None
