"""The baseline: the least a DRF write endpoint in this project can do.

It goes through the same middleware, DRF parsing, exception handler and JSON renderer
as the widget API, and stores one row in a tenant-owned table, so the ratios printed by
`bench.run` measure what the widget API adds on top of "parse, insert, answer".
"""

from django.conf import settings
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from webchat.models import EventType, WebChatEvent


class BaselineApi(APIView):
    authentication_classes: list = []
    permission_classes: list = []

    class InputSerializer(serializers.Serializer):
        n = serializers.IntegerField(min_value=0)

    def post(self, request: Request) -> Response:
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        event = WebChatEvent.objects.create(
            tenant_id=settings.BENCH_TENANT_ID,
            site_id=settings.BENCH_SITE_ID,
            type=EventType.WIDGET_LOADED,
            payload={"n": body.validated_data["n"]},
        )
        return Response(
            {"id": event.pk, "n": body.validated_data["n"]}, status=status.HTTP_201_CREATED
        )
