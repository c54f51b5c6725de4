"""`POST /api/webhooks/chatwoot/<token>/`: Chatwoot's account webhooks.

The token in the path is the connection's unguessable webhook token. The view verifies,
stores and acknowledges; processing happens in a Celery task (Chatwoot waits 5 s and
never retries account webhooks, so the answer must come fast whatever happens next).
"""

import time

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from support import metrics, webhooks
from support.exceptions import UnknownWebhook
from support.selectors import connection_get_for_webhook


class ChatwootWebhookApi(APIView):
    authentication_classes: list = []
    permission_classes: list = []

    @extend_schema(exclude=True)
    def post(self, request: Request, token: str) -> Response:
        started = time.perf_counter()
        connection = connection_get_for_webhook(token=token)
        if connection is None:
            raise UnknownWebhook()
        receipt = webhooks.webhook_receive(
            connection=connection, headers=request.headers, body=request.body
        )
        metrics.WEBHOOK_ACK.observe(time.perf_counter() - started)
        return Response(
            {"status": "duplicate" if receipt.duplicate else "accepted"},
            status=200,
            headers={"Cache-Control": "no-store"},
        )
