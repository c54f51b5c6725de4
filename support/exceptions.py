from core.exceptions import ApplicationError, NotFound


class UnknownWebhook(NotFound):
    code = "unknown_webhook"
    default_message = "No active Chatwoot connection has this webhook URL."


class WebhookRejected(ApplicationError):
    status = 401


class WebhookSignatureMissing(WebhookRejected):
    code = "signature_missing"
    default_message = "The delivery is not signed (X-Chatwoot-Signature and X-Chatwoot-Timestamp)."


class WebhookSignatureInvalid(WebhookRejected):
    code = "signature_invalid"
    default_message = "The X-Chatwoot-Signature does not match the body."


class WebhookTimestampExpired(WebhookRejected):
    code = "timestamp_expired"
    default_message = "The X-Chatwoot-Timestamp is more than 5 minutes away from now."


class ApprovalNotPending(ApplicationError):
    code = "not_pending"
    status = 409
    default_message = "This draft was already handled."
