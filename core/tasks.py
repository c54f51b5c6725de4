"""Queueing a Celery task from a hot request path, for about half the CPU of `apply_async`.

`POST messages` queues one AI-reply task per question. `Task.apply_async` spends most of
its ~0.7 ms of CPU (measured on the bench machines; a Redis LPUSH is ~0.1 ms) on generic
work this call does not need: signature and option merging, a dozen look-ups in the
Django-namespaced settings, a producer taken from the pool and returned. Here the message is
still built and sent by Celery itself (`app.amqp.create_task_message` and
`send_task_message`: the same protocol, routing, publish signals, publish retry policy and
queue declaration as `apply_async`), through a producer kept per thread.

When tasks run eagerly (embedded mode, most tests) this is plain `apply_async`.
"""

from __future__ import annotations

import threading

from celery import Task
from celery.utils import uuid

_local = threading.local()


def enqueue(task: Task, kwargs: dict, *, queue: str | None = None) -> str:
    """Queue `task(**kwargs)` for a worker (or run it now when eager); its task id.
    `queue` overrides the task's route."""
    app = task.app
    options = {"queue": queue} if queue else {}
    if app.conf.task_always_eager:
        return task.apply_async(kwargs=kwargs, **options).id
    amqp = app.amqp
    options = amqp.router.route(options, task.name, (), kwargs)
    task_id = uuid()
    message = amqp.create_task_message(
        task_id,
        task.name,
        (),
        kwargs,
        time_limit=task.time_limit,
        soft_time_limit=task.soft_time_limit,
        argsrepr="()",
        kwargsrepr=repr(kwargs),
        ignore_result=task.ignore_result,
    )
    amqp.send_task_message(_producer(app), task.name, message, **options)
    return task_id


def _producer(app):
    """This thread's producer on its own broker connection (kombu reconnects it when the
    broker goes away, under the publish retry policy)."""
    producer = getattr(_local, "producer", None)
    if producer is None or getattr(_local, "app", None) is not app:
        producer = app.amqp.Producer(app.connection_for_write(), auto_declare=False)
        _local.producer, _local.app = producer, app
    return producer
