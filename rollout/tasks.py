"""Beat tasks (see CELERY_BEAT_SCHEDULE): thin wrappers over rollout services."""

from celery import shared_task

from rollout.services import gates_evaluate, scheduled_change_apply_due


@shared_task(acks_late=True)
def apply_scheduled_changes() -> int:
    return scheduled_change_apply_due()


@shared_task(acks_late=True)
def evaluate_gates() -> dict[str, int]:
    counts: dict[str, int] = {}
    for result in gates_evaluate():
        counts[result.status] = counts.get(result.status, 0) + 1
    return counts
