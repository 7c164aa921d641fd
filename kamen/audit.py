"""The staff audit log: one call per audited action, inside the action's transaction."""

from typing import Any

from django.db import models

from .client_ip import client_ip
from .models import AuditLogEntry

# Field names whose values must never reach the audit log, whatever the model.
SECRET_FIELD_MARKERS = ("secret", "password", "ciphertext", "token", "api_key", "app_secret")


def _is_secret_field(name: str) -> bool:
    lowered = name.lower()
    return any(marker in lowered for marker in SECRET_FIELD_MARKERS)


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, models.Model):
        return str(value)
    return str(value)


def diff_fields(*, before: dict[str, Any], after: dict[str, Any]) -> dict[str, list]:
    """{field: [old, new]} for the fields that changed; secret fields are reported as changed
    without their values."""
    changes = {}
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if _is_secret_field(name):
            changes[name] = ["***", "***"]
        else:
            changes[name] = [_plain(old), _plain(new)]
    return changes


def snapshot(instance: models.Model, fields: list[str]) -> dict[str, Any]:
    return {name: getattr(instance, name) for name in fields}


def record_audit(
    *,
    actor,
    action: str,
    target: models.Model | None = None,
    changes: dict | None = None,
    request=None,
    target_repr: str | None = None,
) -> AuditLogEntry:
    is_authenticated = actor is not None and getattr(actor, "is_authenticated", False)
    return AuditLogEntry.objects.create(
        actor=actor if is_authenticated else None,
        actor_name=(actor.get_username() if is_authenticated else "system"),
        action=action,
        target_type=(target._meta.label if target is not None else ""),
        target_id=(str(target.pk) if target is not None and target.pk is not None else ""),
        target_repr=(target_repr if target_repr is not None else str(target or ""))[:200],
        changes={key: value for key, value in (changes or {}).items() if not _is_secret_field(key)}
        | {key: ["***", "***"] for key in (changes or {}) if _is_secret_field(key)},
        ip_address=client_ip(request),
    )
