from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils.translation import gettext_lazy as _


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

    created_at = models.DateTimeField(_("时间"), auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("操作人"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
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
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    class Meta:
        db_table = "riskcontrol_stafftwofactor"  # where the model lived before it moved here
        verbose_name = _("两步验证")
        verbose_name_plural = _("两步验证")

    def __str__(self):
        return str(self.user)
