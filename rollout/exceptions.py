"""Errors raised by rollout services (rendered as form errors on the admin screens)."""

from core.exceptions import ApplicationError, InvalidRequest


class ChangeInvalid(InvalidRequest):
    code = "rollout_change_invalid"
    default_message = "That rollout change is not valid."


class ReasonRequired(ChangeInvalid):
    code = "reason_required"
    default_message = "Give a reason for this change (it goes into the audit log)."


class NoChange(ChangeInvalid):
    code = "rollout_no_change"
    default_message = "Nothing would change: that is already the current setting."


class GatesNotPassing(ApplicationError):
    code = "gates_not_passing"
    status = 409
    default_message = "The SLO gates do not pass, so this promotion is on hold."


class ChangedSinceLoaded(ChangeInvalid):
    code = "rollout_changed_since_loaded"
    status = 409
    default_message = "Someone changed this since the page was loaded: reload it and decide again."
