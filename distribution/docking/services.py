"""Docking sites and their API keys: apply, approve, keys issued and revoked, signed requests
verified, webhook events written to the outbox (docs/adr/0019).

A signed request is checked in this order, each failure a stable error code and nothing
written but the spent nonce: headers present; the key known (and, when it is not in this
process's short cache, not revoked and its site active); timestamp within ±5 minutes; nonce
well formed; the HMAC (constant-time); then in one statement the nonce spent (a unique row in
PostgreSQL, so a replay is refused on every host) with the key's and site's current state read
fresh: not revoked, site active, the caller's IP on the site's allowlist, the nonce never used
before; the key's scope; the key's rate limit. Rate limiting comes after the signature so that
nobody can use up a site's quota with unsigned requests.
"""

import ipaddress
import json
import logging
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import URLValidator, validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from kamen import api_signing, crypto
from kamen.audit import record_audit
from kamen.db import fetch_rows
from kamen.four_eyes import require_another_person
from kamen.money import InvalidAmount, parse_amount
from kamen.security import is_over_limit

from .. import sql as docking_sql
from ..models import Distributor, DistributorStatus
from .errors import DockingError
from .models import (
    ApiKey,
    ApiNonce,
    ApiScope,
    DockingSite,
    DockingSiteStatus,
    WebhookEvent,
)

logger = logging.getLogger(__name__)

KEY_ID_PREFIX = "ak_"


def _secret_associated_data(key_id: str) -> bytes:
    return b"docking-api-key:" + key_id.encode()


def _webhook_associated_data(site_pk: int) -> bytes:
    return b"docking-webhook:" + str(site_pk).encode()


def api_key_associated_data(row) -> bytes:
    return _secret_associated_data(row.key_id)


def webhook_secret_associated_data(row) -> bytes:
    return _webhook_associated_data(row.pk)


# --- sites -------------------------------------------------------------------------------------
def _clean_allowlist(raw) -> list[str]:
    if isinstance(raw, str):
        raw = [part for part in raw.replace(",", "\n").split() if part]
    cleaned = []
    for entry in raw or []:
        try:
            cleaned.append(str(ipaddress.ip_network(str(entry).strip(), strict=False)))
        except ValueError:
            raise ValidationError(
                {"ip_allowlist": [_("不是有效的 IP 或网段：%(entry)s") % {"entry": str(entry)[:60]}]}
            ) from None
    if len(cleaned) > 50:
        raise ValidationError({"ip_allowlist": [_("白名单最多 50 项")]})
    return cleaned


def apply_for_docking(
    *, distributor: Distributor, name: str, contact_email: str, ip_allowlist=(), webhook_url: str = ""
) -> DockingSite:
    """A distributor's application (or staff adding one): waits for approval."""
    name = (name or "").strip()
    errors = {}
    if not name or len(name) > 60:
        errors["name"] = [_("请填写站点名称（最多 60 个字符）")]
    try:
        validate_email(contact_email or "")
    except ValidationError:
        errors["contact_email"] = [_("请输入正确的邮箱地址")]
    if webhook_url:
        try:
            URLValidator(schemes=["http", "https"])(webhook_url)
        except ValidationError:
            errors["webhook_url"] = [_("回调地址须为 http(s) 网址")]
    if distributor.status != DistributorStatus.ACTIVE:
        errors["distributor"] = [_("只有正常状态的分销商可以申请对接")]
    if errors:
        raise ValidationError(errors)
    allowlist = _clean_allowlist(ip_allowlist)
    try:
        with transaction.atomic():
            return DockingSite.objects.create(
                distributor=distributor,
                name=name,
                contact_email=contact_email.lower(),
                ip_allowlist=allowlist,
                webhook_url=webhook_url,
            )
    except IntegrityError:
        raise ValidationError({"distributor": [_("该分销商已有对接商户")]}) from None


def approve_docking_site(
    *, site: DockingSite, actor, credit_limit="0", requests_per_minute: int | None = None, request=None
) -> DockingSite:
    """Staff approve: the site may use its keys. Its price follows its distributor's grade."""
    if actor is None or not actor.has_perm("distribution.approve_dockingsite"):
        raise PermissionDenied("approving a docking site needs distribution.approve_dockingsite")
    try:
        limit = parse_amount(credit_limit, allow_zero=True)
    except InvalidAmount as error:
        raise ValidationError({"credit_limit": [str(error)]}) from None
    with transaction.atomic():
        locked = DockingSite.objects.select_for_update().select_related("distributor").get(pk=site.pk)
        require_another_person(actor=actor, subject_user_ids=[locked.distributor.user_id], what=_("对接商户审核"))
        if locked.status not in (DockingSiteStatus.APPLIED, DockingSiteStatus.SUSPENDED):
            raise ValidationError(_("该对接商户当前状态不能审核通过"))
        before = locked.status
        locked.status = DockingSiteStatus.ACTIVE
        locked.credit_limit = limit
        if requests_per_minute:
            locked.requests_per_minute = int(requests_per_minute)
        locked.approved_by = actor
        locked.approved_at = timezone.now()
        locked.save()
        record_audit(
            actor=actor,
            action="docking.site_approved",
            target=locked,
            changes={"status": [before, locked.status], "credit_limit": [None, str(limit)]},
            request=request,
        )
    return locked


def suspend_docking_site(*, site: DockingSite, actor, reason: str, request=None) -> DockingSite:
    if actor is None or not actor.has_perm("distribution.approve_dockingsite"):
        raise PermissionDenied("suspending a docking site needs distribution.approve_dockingsite")
    with transaction.atomic():
        locked = DockingSite.objects.select_for_update().select_related("distributor").get(pk=site.pk)
        require_another_person(actor=actor, subject_user_ids=[locked.distributor.user_id], what=_("暂停对接商户"))
        before = locked.status
        locked.status = DockingSiteStatus.SUSPENDED
        locked.save(update_fields=["status", "updated_at"])
        record_audit(
            actor=actor,
            action="docking.site_suspended",
            target=locked,
            changes={"status": [before, locked.status], "reason": (reason or "")[:200]},
            request=request,
        )
    return locked


def set_webhook(*, site: DockingSite, url: str, actor=None, request=None) -> str:
    """Set the site's callback URL and a new webhook secret; returns the secret (shown once)."""
    try:
        URLValidator(schemes=["http", "https"])(url)
    except ValidationError:
        raise ValidationError({"webhook_url": [_("回调地址须为 http(s) 网址")]}) from None
    secret = secrets.token_urlsafe(32)
    key_id, blob = crypto.encrypt(secret, associated_data=_webhook_associated_data(site.pk))
    with transaction.atomic():
        DockingSite.objects.filter(pk=site.pk).update(
            webhook_url=url, webhook_secret_ciphertext=blob, webhook_secret_key_id=key_id, updated_at=timezone.now()
        )
        record_audit(
            actor=actor,
            action="docking.webhook_set",
            target=site,
            changes={"webhook_url": [site.webhook_url, url], "webhook_secret": [1, 2]},
            request=request,
        )
    site.webhook_url, site.webhook_secret_ciphertext, site.webhook_secret_key_id = url, blob, key_id
    return secret


def webhook_secret(site: DockingSite) -> str:
    if not site.webhook_secret_ciphertext:
        return ""
    return crypto.decrypt(
        key_id=site.webhook_secret_key_id,
        blob=bytes(site.webhook_secret_ciphertext),
        associated_data=_webhook_associated_data(site.pk),
    )


# --- API keys ----------------------------------------------------------------------------------
def _clean_scopes(scopes) -> list[str]:
    chosen = sorted({str(scope) for scope in scopes or []})
    unknown = [scope for scope in chosen if scope not in ApiScope.values]
    if unknown or not chosen:
        raise ValidationError({"scopes": [_("请选择权限范围：%(known)s") % {"known": ", ".join(ApiScope.values)}]})
    return chosen


def create_api_key(*, site: DockingSite, scopes, label: str = "", actor=None, request=None) -> tuple[ApiKey, str]:
    """A new key for ``site``; returns (key, secret). The secret is never shown again: only its
    ciphertext (vault keys) is stored."""
    if actor is not None and not actor.has_perm("distribution.manage_api_keys"):
        raise PermissionDenied("issuing an API key needs distribution.manage_api_keys")
    chosen = _clean_scopes(scopes)
    key_id = KEY_ID_PREFIX + secrets.token_hex(12)
    secret = secrets.token_urlsafe(32)
    vault_key, blob = crypto.encrypt(secret, associated_data=_secret_associated_data(key_id))
    with transaction.atomic():
        key = ApiKey.objects.create(
            site=site,
            key_id=key_id,
            secret_ciphertext=blob,
            secret_key_id=vault_key,
            label=(label or "")[:40],
            scopes=chosen,
            created_by=actor if getattr(actor, "is_authenticated", False) else None,
        )
        record_audit(
            actor=actor,
            action="docking.api_key_created",
            target=key,
            changes={"scopes": [None, chosen], "site": site.pk},
            request=request,
        )
    return key, secret


def revoke_api_key(*, key: ApiKey, actor=None, request=None) -> ApiKey:
    if actor is not None and not actor.has_perm("distribution.manage_api_keys"):
        raise PermissionDenied("revoking an API key needs distribution.manage_api_keys")
    with transaction.atomic():
        locked = ApiKey.objects.select_for_update().get(pk=key.pk)
        if locked.is_active:
            locked.is_active = False
            locked.revoked_at = timezone.now()
            locked.revoked_by = actor if getattr(actor, "is_authenticated", False) else None
            locked.save(update_fields=["is_active", "revoked_at", "revoked_by"])
            record_audit(actor=actor, action="docking.api_key_revoked", target=locked, request=request)
    return locked


def _secret_of(key: ApiKey) -> str:
    return crypto.decrypt(
        key_id=key.secret_key_id, blob=bytes(key.secret_ciphertext), associated_data=_secret_associated_data(key.key_id)
    )


# --- signed requests ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Caller:
    """Who a verified request comes from: plain values for the layers above."""

    key_pk: int
    key_id: str
    site_id: int
    distributor_id: int
    scopes: tuple[str, ...]
    site_name: str
    credit_limit: object
    client_ip: str
    order_limit: int | None = None
    contact_email: str = ""


def _ip_allowed(allowlist: list[str], ip: str | None) -> bool:
    if not allowlist:
        return True
    if not ip:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(entry, strict=False) for entry in allowlist)


# Keys seen recently, per process: their id and decrypted secret, so that checking a signature
# needs no read and no decryption. Only what cannot change is kept (a key's secret is fixed
# for its life); whether it is revoked, its scopes and its site are read fresh with the nonce
# (``sql.SPEND_NONCE``), so a revoked key or a suspended site is refused at once.
KEY_CACHE_SECONDS = 60
KEY_CACHE_SIZE = 1000


@dataclass(frozen=True)
class _KnownKey:
    pk: int
    key_id: str
    site_id: int
    secret: str
    expires: float


_known_keys: dict[str, _KnownKey] = {}
_known_keys_lock = threading.Lock()


def _known_key(key_id: str) -> _KnownKey:
    """The key from this process's cache, else from the database (refusing an unknown, revoked
    or suspended one as before, and caching only a usable one)."""
    now = time.monotonic()
    known = _known_keys.get(key_id)
    if known is not None and known.expires > now:
        return known
    key = ApiKey.objects.select_related("site").filter(key_id=key_id).first()
    if key is None:
        raise DockingError("auth_unknown_key")
    if not key.is_active:
        raise DockingError("auth_key_revoked")
    if not key.site.is_active:
        raise DockingError("auth_site_inactive")
    known = _KnownKey(
        pk=key.pk, key_id=key.key_id, site_id=key.site_id, secret=_secret_of(key), expires=now + KEY_CACHE_SECONDS
    )
    with _known_keys_lock:
        if len(_known_keys) >= KEY_CACHE_SIZE:
            _known_keys.clear()
        _known_keys[key_id] = known
    return known


def forget_known_keys() -> None:
    """Empty this process's key cache (tests; nothing needs it for correctness)."""
    with _known_keys_lock:
        _known_keys.clear()


def _json(value):
    return json.loads(value) if isinstance(value, str) else value


def spend_nonce(*, key_id: str, nonce: str) -> bool:
    """The same single-use store for other signed traffic (the webhooks an upstream sends us):
    True when fresh, False for a replay."""
    return _spend_nonce(key_id[:40], nonce)


def verify_signed_request(
    *,
    method: str,
    path: str,
    query: str,
    headers,
    body: bytes,
    client_ip: str | None,
    scope: str,
    now: float | None = None,
) -> Caller:
    """The caller of a signed request, or DockingError with the reason (see the module doc).
    Two round trips at most, one when the key is in this process's cache."""
    key_id = (headers.get(api_signing.HEADER_KEY_ID) or "").strip()
    timestamp = (headers.get(api_signing.HEADER_TIMESTAMP) or "").strip()
    nonce = (headers.get(api_signing.HEADER_NONCE) or "").strip()
    signature = (headers.get(api_signing.HEADER_SIGNATURE) or "").strip()
    if not (key_id and timestamp and nonce and signature):
        raise DockingError("auth_missing")
    key = _known_key(key_id[:40])
    if not api_signing.timestamp_is_fresh(timestamp, now=now):
        raise DockingError("auth_timestamp_invalid")
    if not api_signing.nonce_is_well_formed(nonce):
        raise DockingError("auth_nonce_invalid")
    expected = api_signing.compute_signature(
        secret=key.secret, method=method, path=path, query=query, timestamp=timestamp, nonce=nonce, body=body
    )
    if not api_signing.signatures_match(expected, signature):
        raise DockingError("auth_bad_signature")
    rows = fetch_rows(
        docking_sql.SPEND_NONCE,
        {
            "key_pk": key.pk,
            "nonce": nonce,
            "expires_at": timezone.now() + timedelta(seconds=2 * api_signing.MAX_CLOCK_SKEW_SECONDS),
        },
    )
    if not rows:
        raise DockingError("auth_unknown_key")
    (
        is_active,
        scopes,
        status,
        allowlist,
        name,
        distributor_id,
        credit_limit,
        order_limit,
        email,
        per_minute,
        spent,
    ) = rows[0]
    if not is_active:
        raise DockingError("auth_key_revoked")
    if status != DockingSiteStatus.ACTIVE:
        raise DockingError("auth_site_inactive")
    if not _ip_allowed(_json(allowlist), client_ip):
        raise DockingError("auth_ip_not_allowed")
    if not spent:
        raise DockingError("auth_nonce_reused")
    scopes = tuple(_json(scopes))
    if scope not in scopes:
        raise DockingError("auth_scope_denied")
    if is_over_limit(rule="api-key", subject=key.key_id, limit=per_minute, window=60):
        raise DockingError("rate_limited")
    return Caller(
        key_pk=key.pk,
        key_id=key.key_id,
        site_id=key.site_id,
        distributor_id=distributor_id,
        scopes=scopes,
        site_name=name,
        credit_limit=credit_limit,
        client_ip=client_ip or "",
        order_limit=order_limit,
        contact_email=email,
    )


# Last-used times are written at most once a minute per key and process: the console shows
# the minute, and a busy site's orders do not queue on its key's row to stamp it each time.
LAST_USED_EVERY_SECONDS = 60
_last_stamped: dict[str, float] = {}


def record_api_use(*, caller: Caller, operation: str, target_repr: str = "", changes: dict | None = None) -> None:
    """Every use of a key: a row in the audit log (never a card key) and its last-used time
    (to the minute)."""
    from kamen.models import AuditLogEntry

    moment = time.monotonic()
    last = _last_stamped.get(caller.key_id)
    if last is None or moment - last >= LAST_USED_EVERY_SECONDS:
        if len(_last_stamped) >= KEY_CACHE_SIZE:
            _last_stamped.clear()
        _last_stamped[caller.key_id] = moment
        ApiKey.objects.filter(pk=caller.key_pk).update(last_used_at=timezone.now())
    AuditLogEntry.objects.create(
        actor=None,
        actor_name=f"api:{caller.key_id}"[:150],
        action=f"api.{operation}",
        target_type=ApiKey._meta.label,
        target_id=str(caller.key_pk),
        target_repr=(target_repr or caller.site_name)[:200],
        changes=changes or {},
        ip_address=caller.client_ip or None,
    )


def purge_spent_nonces(*, now=None) -> int:
    """Forget nonces past their window (a request that old is refused by its timestamp)."""
    deleted, _by_model = ApiNonce.objects.filter(expires_at__lt=now or timezone.now()).delete()
    return deleted


# --- webhook outbox ----------------------------------------------------------------------------
def add_webhook_event(*, site_id: int, kind: str, payload: dict) -> WebhookEvent | None:
    """Write an event for ``site_id`` into the outbox, in the caller's transaction. None when the
    site has no callback URL (nothing to deliver)."""
    if not DockingSite.objects.filter(pk=site_id).exclude(webhook_url="").exists():
        return None
    event_id = "evt_" + uuid.uuid4().hex
    event = WebhookEvent.objects.create(
        event_id=event_id, site_id=site_id, kind=kind, payload={"id": event_id, "type": kind, "data": payload}
    )
    transaction.on_commit(lambda: _send_soon(event.pk))
    return event


def _send_soon(event_pk: int) -> None:
    """Deliver right after the commit; if the broker is down the periodic sweep does it."""
    from .tasks import deliver_webhook_event_task

    try:
        deliver_webhook_event_task.apply_async(kwargs={"event_pk": event_pk}, retry=False)
    except Exception:  # noqa: BLE001 — the outbox row is committed: the sweep delivers it
        logger.warning("docking.webhook_enqueue_failed", extra={"event": event_pk})
