from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils.translation import gettext_lazy as _

# --- The fields and constraints every app's models repeat -------------------------------------
# Functions, not an abstract model: each returns the field or constraint the app wrote by hand,
# so using one changes no schema and no column order (the raw SQL reads columns in field order).


CREATED_AT = _("创建时间")
UPDATED_AT = _("更新时间")


def created_at_field(verbose_name=CREATED_AT, **options) -> models.DateTimeField:
    """When the row was written (set once, on insert)."""
    return models.DateTimeField(verbose_name, auto_now_add=True, **options)


def updated_at_field(verbose_name=UPDATED_AT, **options) -> models.DateTimeField:
    """When the row was last saved through the ORM."""
    return models.DateTimeField(verbose_name, auto_now=True, **options)


def actor_field(verbose_name, **options) -> models.ForeignKey:
    """The staff member or user who did something to the row, kept as history: optional, left
    empty when the account is deleted, no reverse accessor on the user."""
    defaults = {"null": True, "blank": True, "on_delete": models.SET_NULL, "related_name": "+"}
    return models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=verbose_name, **{**defaults, **options})


def status_check(field: str, choices, *, name: str) -> models.CheckConstraint:
    """The database refuses a ``field`` value outside ``choices`` (a ``TextChoices``), whatever
    wrote it (raw SQL, ``update()``, a hand in psql)."""
    return models.CheckConstraint(condition=models.Q(**{f"{field}__in": choices.values}), name=name)


class User(AbstractUser):
    """Everyone who logs in: merchant staff (is_staff + a role group) and distributors."""

    phone = models.CharField(_("手机号"), max_length=20, blank=True)
    display_name = models.CharField(_("显示名称"), max_length=64, blank=True)

    class Meta:
        verbose_name = _("用户")
        verbose_name_plural = _("用户")

    def __str__(self):
        return self.display_name or self.username


class AuditLogEntry(models.Model):
    """Who changed what, when, from what to what. Append-only; never holds a secret."""

    created_at = created_at_field(_("时间"), db_index=True)
    actor = actor_field(_("操作人"))
    actor_name = models.CharField(_("操作人名称"), max_length=150, blank=True)
    action = models.CharField(_("动作"), max_length=64, db_index=True)
    target_type = models.CharField(_("对象类型"), max_length=100, blank=True)
    target_id = models.CharField(_("对象 ID"), max_length=64, blank=True)
    target_repr = models.CharField(_("对象"), max_length=200, blank=True)
    changes = models.JSONField(_("变更"), default=dict, blank=True)
    ip_address = models.GenericIPAddressField(_("IP"), null=True, blank=True)

    class Meta:
        verbose_name = _("审计日志")
        verbose_name_plural = _("审计日志")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["target_type", "target_id"])]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_name} {self.action} {self.target_repr}"


class StaffTwoFactor(models.Model):
    """A staff member's TOTP (RFC 6238) secret, encrypted; ``last_used_step`` refuses a code
    used twice within its 30-second step."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        verbose_name=_("用户"),
        on_delete=models.CASCADE,
        related_name="two_factor",
    )
    secret_ciphertext = models.BinaryField(editable=False)
    secret_key_id = models.CharField(max_length=32, editable=False)
    confirmed_at = models.DateTimeField(_("启用时间"), null=True, blank=True)
    last_used_step = models.BigIntegerField(default=0, editable=False)
    created_at = created_at_field()

    class Meta:
        db_table = "riskcontrol_stafftwofactor"  # where the model lived before it moved here
        verbose_name = _("两步验证")
        verbose_name_plural = _("两步验证")

    def __str__(self):
        return str(self.user)
