"""Queueing a Celery task from a hot request path, for about half the CPU of `apply_async`.

`POST messages` queues one AI-reply task per question. `Task.apply_async` spends most of
its ~0.7 ms of CPU (measured on the bench machines; a Redis LPUSH is ~0.1 ms) on generic
work this call does not need: signature and option merging, a dozen look-ups in the
Django-namespaced settings, a producer taken from the pool and returned. Here the message is
still built and sent by Celery itself (`app.amqp.create_task_message` and
`send_task_message`: the same protocol, routing, parent and root ids, publish signals,
publish retry policy and queue declaration as `apply_async`), through a producer kept per
thread. Left out: the parent's result trail and inherited priority (results are ignored
here and `task_inherit_parent_priority` is not set).

When tasks run eagerly (embedded mode, most tests) this is plain `apply_async`.
"""

from __future__ import annotations

import threading

from celery import Task
from celery.local import Proxy
from celery.utils import uuid

_local = threading.local()


def enqueue(task: Task, kwargs: dict, *, queue: str | None = None) -> str:
    """Queue `task(**kwargs)` for a worker (or run it now when eager); its task id.
    `queue` overrides the task's route."""
    if isinstance(task, Proxy):  # `shared_task` hands out a proxy: resolve it once
        task = task._get_current_object()
    app, name = task.app, task.name
    options = {"queue": queue} if queue else {}
    if app.conf.task_always_eager:
        return task.apply_async(kwargs=kwargs, **options).id
    amqp = app.amqp
    options = amqp.router.route(options, name, (), kwargs)
    producer, bound = _producer(app, options["queue"])
    task_id = uuid()
    # Queued by a task a worker runs: it is the new task's parent, as in `send_task`.
    parent = app.current_worker_task
    message = amqp.create_task_message(
        task_id,
        name,
        (),
        kwargs,
        time_limit=task.time_limit,
        soft_time_limit=task.soft_time_limit,
        root_id=(parent.request.root_id or parent.request.id) if parent else None,
        parent_id=parent.request.id if parent else None,
        argsrepr="()",
        kwargsrepr=repr(kwargs),
        ignore_result=task.ignore_result,
    )
    # The queue is declared as apply_async declares it (once per connection, cached by
    # kombu), but from a copy bound to this producer's channel once, not one per call.
    amqp.send_task_message(producer, name, message, declare=[bound], **options)
    return task_id


def _producer(app, queue):
    """This thread's producer on its own broker connection (kombu reconnects it when the
    broker goes away, under the publish retry policy), and `queue` bound to its channel."""
    state = getattr(_local, "state", None)
    if state is None or state[0] is not app:
        producer = app.amqp.Producer(app.connection_for_write(), auto_declare=False)
        state = _local.state = (app, producer, {})
    _app, producer, bound = state
    if queue.name not in bound:
        bound[queue.name] = queue.bind(producer.channel)
    return producer, bound[queue.name]
