"""The public widget API (`/api/webchat/v1/`): thin views over webchat services.

Every route: body size limit, site resolved from the site key (or the session token),
strict Origin/Referer check against the site's allowed domains, the rollout decision,
rate limits per IP/site/session; errors are {"error": {"code", "message"}}.
"""

from dataclasses import dataclass

import structlog
from django.conf import settings
from django.core.cache import caches
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.cache import read_and_count
from core.exceptions import PayloadTooLarge, RateLimited
from core.text import ascii_digits
from rollout.selectors import decision_cache_keys, webchat_allowed
from webchat import metrics, ratelimits, services
from webchat.api import serializers as s
from webchat.api.schema import SESSION_TOKEN
from webchat.exceptions import (
    ChallengeInvalid,
    OriginNotAllowed,
    TokenExpired,
    TokenInvalid,
    UnknownSite,
    WebchatDisabled,
)
from webchat.models import EventType, WebChatSession
from webchat.origins import origin_allowed, origin_of_url
from webchat.selectors import (
    SiteSnapshot,
    session_get,
    site_id_cache_key,
    site_snapshot_for_id,
    site_snapshot_for_key,
)
from webchat.signals import VERIFIED_ORIGIN_ATTR
from webchat.tokens import SessionClaims, challenge_consume, challenge_issue, session_token_read

ERROR_RESPONSES = {
    status_code: OpenApiResponse(s.ErrorSerializer, description=description)
    for status_code, description in {
        400: "invalid_request: a field is missing or wrong (the message says which)",
        401: "token_invalid or token_expired",
        403: "origin_not_allowed, webchat_disabled, challenge_invalid or identity_invalid",
        404: "unknown_site or conversation_not_found",
        413: "payload_too_large: bodies are at most 32 KB",
        429: "rate_limited; Retry-After gives the seconds to wait",
    }.items()
}


@dataclass(frozen=True)
class Prefetched:
    """What a token route read from the cache and counted in its one round trip."""

    site: dict | None  # the site snapshot's cached value (None: not cached)
    tenant_id: int | None  # the token's tenant: the rollout values are that tenant's
    rollout: dict | None  # rollout.selectors.decision_cache_keys -> value (None: unread)
    limits: list[ratelimits.Limit]
    counts: list[int]


class PublicApi(APIView):
    authentication_classes: list = []
    permission_classes: list = []
    route = ""

    def initial(self, request: Request, *args, **kwargs) -> None:
        if request.method == "POST":
            declared = request.META.get("CONTENT_LENGTH") or "0"
            too_big = not ascii_digits(declared) or int(declared) > settings.WEBCHAT_MAX_BODY_BYTES
            if too_big or len(request._request.body) > settings.WEBCHAT_MAX_BODY_BYTES:
                raise PayloadTooLarge(
                    f"Bodies are at most {settings.WEBCHAT_MAX_BODY_BYTES // 1024} KB."
                )
        super().initial(request, *args, **kwargs)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Cache-Control"] = "no-store"
        self._let_refused_origin_read_the_refusal(request, response)
        return response

    @staticmethod
    def _let_refused_origin_read_the_refusal(request, response) -> None:
        """A refused origin gets no CORS headers from the allowlist, so a browser would see
        only a network error and the widget would retry. The refusal holds no secrets: let
        that origin read it, so the widget stops at once."""
        origin = request.headers.get("Origin")
        refused = response.status_code == 403 and isinstance(response.data, dict)
        code = response.data.get("error", {}).get("code") if refused else None
        readable = code in ("origin_not_allowed", "webchat_disabled")
        if origin and readable and "Access-Control-Allow-Origin" not in response:
            response["Access-Control-Allow-Origin"] = origin
            response["Vary"] = "Origin"

    # --- shared checks ---------------------------------------------------------------

    @staticmethod
    def request_origin(request: Request) -> str:
        """The Origin header, or failing that the origin of the Referer."""
        origin = request.headers.get("Origin", "")
        if origin and origin != "null":
            return origin[:255]
        return (origin_of_url(request.headers.get("Referer", "")) or "")[:255]

    def site_for_key(self, request: Request, site_key: str) -> SiteSnapshot:
        """The site of a public key. A key the cache does not know costs a database lookup,
        so those are limited per address first (a flood of made-up keys gets a 429)."""
        site = site_snapshot_for_key(
            site_key=site_key,
            before_lookup=lambda: ratelimits.enforce(request, route="site_lookup"),
        )
        if site is None:
            raise UnknownSite()
        return site

    def check_site(
        self,
        request: Request,
        site: SiteSnapshot,
        *,
        session_id: int | None = None,
        read: Prefetched | None = None,
    ) -> str:
        """Origin, rollout and rate limits for one site; returns the checked origin. With
        `read`, the rollout cache and the counters were already read and bumped."""
        structlog.contextvars.bind_contextvars(tenant_id=site.tenant_id)  # on every log line
        origin = self.request_origin(request)
        if not origin_allowed(
            origin, site.allowed_domains, allow_any=settings.WEBCHAT_ALLOW_ANY_ORIGIN
        ):
            metrics.ORIGIN_DENIED.labels(self.route).inc()
            services.incident_record(
                site=site,
                type=EventType.ORIGIN_DENIED,
                detail={"origin": origin or "(none)", "route": self.route},
                session_id=session_id,
            )
            raise OriginNotAllowed()
        setattr(request._request, VERIFIED_ORIGIN_ATTR, origin)
        rollout = read.rollout if read and read.tenant_id == site.tenant_id else None
        decision = webchat_allowed(site, cached=rollout)
        if not decision.allowed:
            metrics.DISABLED.labels(decision.reason).inc()
            raise WebchatDisabled()
        try:
            if read is None:
                ratelimits.enforce(
                    request, route=self.route, site_id=site.id, session_id=session_id
                )
            else:
                ratelimits.refuse_if_over(self.route, read.limits, read.counts)
        except RateLimited:
            services.incident_record(
                site=site,
                type=EventType.RATE_LIMITED,
                detail={
                    "route": self.route,
                    "ip_hash": ratelimits.ip_hash(ratelimits.client_ip(request)),
                },
                session_id=session_id,
            )
            raise
        return origin

    def authenticate(self, request: Request) -> tuple[SiteSnapshot, WebChatSession]:
        """Resolve the Bearer session token to its site and session (with its
        conversation), checking everything."""
        site, claims = self.authenticate_token(request)
        session = session_get(site_id=site.id, session_id=claims.session_id)
        refusal = services.session_refusal(session=session, claims=claims)
        if refusal is not None:
            raise refusal
        services.session_touch(session=session)
        return site, session

    def authenticate_token(self, request: Request) -> tuple[SiteSnapshot, SessionClaims]:
        """Check the Bearer session token, its site (origin, rollout, rate limits) and that
        it was issued to this origin; its session is for the caller to check."""
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            metrics.TOKEN_FAILURES.labels("missing").inc()
            raise TokenInvalid("Send the session token as 'Authorization: Bearer <token>'.")
        try:
            claims = session_token_read(token.strip())
        except (TokenInvalid, TokenExpired) as exc:
            metrics.TOKEN_FAILURES.labels(exc.code).inc()
            self._record_token_failure(request, token.strip(), exc.code)
            raise
        read = self._read_for_token(request, claims)
        site = site_snapshot_for_id(site_id=claims.site_id, cached=read.site)
        if site is None:
            metrics.TOKEN_FAILURES.labels("site_gone").inc()
            raise TokenInvalid("This chat site is no longer active.")
        origin = self.check_site(request, site, session_id=claims.session_id, read=read)
        if origin != claims.origin:
            metrics.TOKEN_FAILURES.labels("wrong_origin").inc()
            services.incident_record(
                site=site,
                type=EventType.TOKEN_INVALID,
                detail={"reason": "wrong_origin", "origin": origin, "route": self.route},
            )
            raise TokenInvalid("This session token was issued to another website.")
        return site, claims

    def _read_for_token(self, request: Request, claims: SessionClaims) -> Prefetched:
        """One cache round trip for a token route: the site, its rollout decision and the
        request's rate-limit counters (counted before the site's checks: the token's
        signature already proved the site and session are real)."""
        limits = ratelimits.limits_for(
            request, route=self.route, site_id=claims.site_id, session_id=claims.session_id
        )
        site_key = site_id_cache_key(claims.site_id)
        rollout_keys = (
            decision_cache_keys(tenant_id=claims.tenant_id, site_id=claims.site_id)
            if claims.tenant_id is not None
            else []
        )
        found, counts = read_and_count(
            caches[settings.RATELIMIT_USE_CACHE],
            [site_key, *rollout_keys],
            ratelimits.counters(limits),
        )
        rollout = {k: found[k] for k in rollout_keys if k in found} if rollout_keys else None
        return Prefetched(
            site=found.get(site_key),
            tenant_id=claims.tenant_id,
            rollout=rollout,
            limits=limits,
            counts=counts,
        )

    def _record_token_failure(self, request: Request, token: str, reason: str) -> None:
        """A refused token still names its site when its signature is good (just expired)."""
        try:
            claims = session_token_read(token, max_age=settings.WEBCHAT_RESUME_MAX_AGE)
        except (TokenInvalid, TokenExpired):
            return
        site = site_snapshot_for_id(site_id=claims.site_id)
        if site is not None:
            services.incident_record(
                site=site,
                type=EventType.TOKEN_INVALID,
                detail={"reason": reason, "route": self.route},
            )


# Instantiating a DRF serializer deep-copies all its declared fields, a large share of a
# hot route's time. These serializers keep no per-request state (their fields and
# validate_* methods are pure), so each is built once and used through the stateless
# halves of DRF's API: `run_validation` (what `is_valid` runs) and `to_representation`.
_SERIALIZERS: dict[type, serializers.Serializer] = {}


def _shared(serializer_class: type[serializers.Serializer]) -> serializers.Serializer:
    serializer = _SERIALIZERS.get(serializer_class)
    if serializer is None:
        serializer = _SERIALIZERS.setdefault(serializer_class, serializer_class())
    return serializer


def _validate(serializer_class: type[serializers.Serializer], data) -> dict:
    """`serializer_class(data=data)`'s validated data, as `is_valid(raise_exception=True)`
    gives it: raises the same ValidationError (an `invalid_request` answer)."""
    if data is None:  # a JSON `null` body: what `is_valid` says of it
        raise serializers.ValidationError({"non_field_errors": ["No data provided"]}, code="null")
    return _shared(serializer_class).run_validation(data)


def _serialize(serializer_class: type[serializers.Serializer], instance) -> dict:
    return _shared(serializer_class).to_representation(instance)


class ConfigApi(PublicApi):
    route = "config"

    @extend_schema(
        operation_id="webchat_config",
        parameters=[s.ConfigQuerySerializer],
        responses={200: s.ConfigOutputSerializer, **ERROR_RESPONSES},
    )
    def get(self, request: Request) -> Response:
        query = _validate(s.ConfigQuerySerializer, request.query_params)
        site = self.site_for_key(request, query["site_key"])
        origin = self.check_site(request, site)
        challenge = challenge_issue(
            site_id=site.id, origin=origin, pow_difficulty=site.pow_difficulty
        )
        payload = {
            "site": site.public,
            "challenge": challenge.token,
            "challenge_expires_at": challenge.expires_at,
            "pow": challenge.pow,
        }
        return Response(_serialize(s.ConfigOutputSerializer, payload))


class InitApi(PublicApi):
    route = "init"

    @extend_schema(
        operation_id="webchat_init",
        request=s.InitInputSerializer,
        responses={200: s.InitOutputSerializer, **ERROR_RESPONSES},
    )
    def post(self, request: Request) -> Response:
        data = _validate(s.InitInputSerializer, request.data)
        site = self.site_for_key(request, data["site_key"])
        origin = self.check_site(request, site)
        try:
            challenge_consume(
                token=data["challenge"],
                site_id=site.id,
                origin=origin,
                pow_solution=data.get("pow_solution"),
            )
        except ChallengeInvalid as exc:
            metrics.TOKEN_FAILURES.labels("challenge").inc()
            services.incident_record(
                site=site, type=EventType.CHALLENGE_INVALID, detail={"reason": exc.message[:200]}
            )
            raise
        page = data.get("page") or {}
        started = services.session_start(
            site=site,
            origin=origin,
            visitor_id=data["visitor_id"],
            session_token=data["session_token"],
            conversation_id=data.get("conversation_id"),
            user_id=data["user_id"],
            user_hash=data["user_hash"],
            page=services.PageInfo(
                url=page.get("url", ""),
                referrer=page.get("referrer", ""),
                locale=page.get("locale", ""),
                utm=dict(page.get("utm") or {}),
            ),
            user_agent=request.headers.get("User-Agent", ""),
            ip_hash=ratelimits.ip_hash(ratelimits.client_ip(request)),
        )
        payload = {
            "session_token": started.token,
            "expires_at": started.expires_at,
            "visitor_id": started.session.visitor_id,
            "conversation_id": started.session.conversation_id,
            "messages": started.messages,
            "resumed": started.resumed,
        }
        return Response(_serialize(s.InitOutputSerializer, payload))


class MessagesApi(PublicApi):
    def initial(self, request: Request, *args, **kwargs) -> None:
        self.route = "messages_post" if request.method == "POST" else "messages_get"
        super().initial(request, *args, **kwargs)

    @extend_schema(
        operation_id="webchat_messages_create",
        auth=SESSION_TOKEN,
        request=s.MessageInputSerializer,
        responses={
            201: s.MessageOutputSerializer,
            200: s.MessageOutputSerializer,
            **ERROR_RESPONSES,
        },
    )
    def post(self, request: Request) -> Response:
        # The session is checked by the query that locks its conversation.
        site, claims = self.authenticate_token(request)
        body = _validate(s.MessageInputSerializer, request.data)
        received = services.message_receive(
            site=site,
            claims=claims,
            text=body["text"],
            client_message_id=body["client_message_id"],
        )
        payload = {
            "message": received.message,
            "replies": received.replies,
            "pending_reply": received.pending_reply,
        }
        return Response(
            _serialize(s.MessageOutputSerializer, payload),
            status=status.HTTP_201_CREATED if received.created else status.HTTP_200_OK,
        )

    @extend_schema(
        operation_id="webchat_messages_list",
        parameters=[s.MessagesQuerySerializer],
        auth=SESSION_TOKEN,
        responses={200: s.MessagesOutputSerializer, **ERROR_RESPONSES},
    )
    def get(self, request: Request) -> Response:
        _site, session = self.authenticate(request)
        query = _validate(s.MessagesQuerySerializer, request.query_params)
        messages, pending = services.messages_poll(session=session, after=query["after"])
        return Response(
            _serialize(s.MessagesOutputSerializer, {"messages": messages, "pending_reply": pending})
        )


class EventsApi(PublicApi):
    route = "events"

    @extend_schema(
        operation_id="webchat_events",
        description="With the session token, or before init with site_key in the body.",
        auth=[*SESSION_TOKEN, {}],
        request=s.EventsInputSerializer,
        responses={202: s.EventsOutputSerializer, **ERROR_RESPONSES},
    )
    def post(self, request: Request) -> Response:
        body = _validate(s.EventsInputSerializer, request.data)
        session = None
        if request.headers.get("Authorization"):
            site, session = self.authenticate(request)
        elif body.get("site_key"):
            site = self.site_for_key(request, body["site_key"])
            self.check_site(request, site)
        else:
            raise TokenInvalid("Send a session token, or the site_key before init.")
        valid = []
        for raw in body["events"]:
            try:
                event = _validate(s.EventSerializer, raw if isinstance(raw, dict) else {})
            except serializers.ValidationError:
                continue
            if len(str(event.get("data") or {})) <= 2048:
                valid.append({**event, "at": str(event.get("at") or "")})
        accepted = (
            services.events_record(site=site, session=session, events=valid)
            if site.telemetry
            else 0
        )
        rejected = len(body["events"]) - accepted
        return Response(
            _serialize(s.EventsOutputSerializer, {"accepted": accepted, "rejected": rejected}),
            status=status.HTTP_202_ACCEPTED,
        )
