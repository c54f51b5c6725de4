"""Writes behind the tenant dashboard's webchat pages: site settings, keys, secrets.

Views validate input with `webchat.forms` and call one of these. Public-key rotation goes
through `webchat.services.site_key_rotate`; the caches the public API reads are cleared by
the `post_save` signal of WebChatSite (and by `site_key_rotate` itself).
"""

from __future__ import annotations

from datetime import timedelta

import structlog
from django.db import transaction

from core.exceptions import InvalidRequest
from tenants.models import Tenant
from webchat.models import WebChatSite, new_identity_secret
from webchat.origins import InvalidRule, validate_rules
from webchat.services import site_create, site_key_rotate

log = structlog.get_logger(__name__)

# After a rotation the previous public key keeps working this long, so pages that still
# carry the old snippet (or a cached copy of it) keep their chat while the site is updated.
KEY_ROTATION_GRACE = timedelta(hours=24)

SETTINGS_FIELDS = (
    "name",
    "bot",
    "allowed_domains",
    "title",
    "color",
    "position",
    "welcome_message",
    "launcher_text",
    "locale",
    "require_consent",
    "telemetry_enabled",
    "pow_difficulty",
    "active",
)


def site_dashboard_create(*, tenant: Tenant, actor, **fields) -> WebChatSite:
    """A new site with a fresh public key and identity secret."""
    unknown = set(fields) - set(SETTINGS_FIELDS)
    if unknown:
        raise InvalidRequest(f"Unknown site fields: {', '.join(sorted(unknown))}.")
    site = site_create(tenant=tenant, **fields)
    log.info("webchat.site_created", tenant_id=tenant.pk, site_id=site.pk, actor_id=actor.pk)
    return site


@transaction.atomic
def site_settings_update(*, site: WebChatSite, actor, **fields) -> WebChatSite:
    unknown = set(fields) - set(SETTINGS_FIELDS)
    if unknown:
        raise InvalidRequest(f"Unknown site fields: {', '.join(sorted(unknown))}.")
    site = WebChatSite.objects.select_for_update().get(tenant_id=site.tenant_id, pk=site.pk)
    changed = [name for name, value in fields.items() if getattr(site, name) != value]
    for name in changed:
        setattr(site, name, fields[name])
    if changed:
        site.full_clean()
        update = [("bot_id" if name == "bot" else name) for name in changed]
        site.save(update_fields=[*update, "updated_at"])
        log.info(
            "webchat.site_updated",
            tenant_id=site.tenant_id,
            site_id=site.pk,
            actor_id=actor.pk,
            fields=sorted(changed),
        )
    return site


@transaction.atomic
def site_public_key_rotate(*, site: WebChatSite, actor) -> WebChatSite:
    """New public key; the old one works for KEY_ROTATION_GRACE (only the latest old key)."""
    site = WebChatSite.objects.select_for_update().get(tenant_id=site.tenant_id, pk=site.pk)
    site = site_key_rotate(site=site, grace=KEY_ROTATION_GRACE)
    log.info(
        "webchat.site_key_rotated",
        tenant_id=site.tenant_id,
        site_id=site.pk,
        actor_id=actor.pk,
        old_key_expires_at=site.previous_key_expires_at.isoformat(),
    )
    return site


@transaction.atomic
def site_identity_secret_rotate(*, site: WebChatSite, actor) -> tuple[WebChatSite, str]:
    """A new identity-verification secret, effective at once (no grace: a leaked secret
    must stop working now). Returns the site and the new secret to show once."""
    site = WebChatSite.objects.select_for_update().get(tenant_id=site.tenant_id, pk=site.pk)
    secret = new_identity_secret()
    site.set_identity_secret(secret)
    site.save(update_fields=["identity_secret_encrypted", "updated_at"])
    log.info(
        "webchat.identity_secret_rotated",
        tenant_id=site.tenant_id,
        site_id=site.pk,
        actor_id=actor.pk,
    )
    return site, secret


def site_identity_secret_reveal(*, site: WebChatSite, actor) -> str:
    """The current secret, for an admin who confirmed; every reveal is logged."""
    log.info(
        "webchat.identity_secret_revealed",
        tenant_id=site.tenant_id,
        site_id=site.pk,
        actor_id=actor.pk,
    )
    return site.identity_secret


@transaction.atomic
def site_domain_add(*, site: WebChatSite, rule: str, actor) -> WebChatSite:
    """Add one allowed-domain rule (e.g. the dashboard's own origin for the test harness)."""
    site = WebChatSite.objects.select_for_update().get(tenant_id=site.tenant_id, pk=site.pk)
    try:
        domains = validate_rules([*site.allowed_domains, rule], allow_any=False)
    except InvalidRule as exc:
        raise InvalidRequest(str(exc)) from exc
    if domains != site.allowed_domains:
        site.allowed_domains = domains
        site.save(update_fields=["allowed_domains", "updated_at"])
        log.info(
            "webchat.site_domain_added",
            tenant_id=site.tenant_id,
            site_id=site.pk,
            actor_id=actor.pk,
            rule=rule,
        )
    return site


@transaction.atomic
def site_domain_remove(*, site: WebChatSite, rule: str, actor) -> WebChatSite:
    site = WebChatSite.objects.select_for_update().get(tenant_id=site.tenant_id, pk=site.pk)
    rule = rule.strip().lower()
    if rule in site.allowed_domains:
        site.allowed_domains = [d for d in site.allowed_domains if d != rule]
        site.save(update_fields=["allowed_domains", "updated_at"])
        log.info(
            "webchat.site_domain_removed",
            tenant_id=site.tenant_id,
            site_id=site.pk,
            actor_id=actor.pk,
            rule=rule,
        )
    return site
