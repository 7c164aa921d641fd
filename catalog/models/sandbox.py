"""State of the sandbox supplier that Kamen ships (served under /sandbox/supplier/).

It behaves like a real upstream: accounts with a signing secret and a balance, SKUs with a
price and stock, and orders that are idempotent per the caller's out_order_no. Latency, failure
rate, out-of-stock and prices are fields the merchant edits in the console to rehearse failures.
"""

from decimal import Decimal

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from kamen.models import created_at_field, updated_at_field

from .products import MONEY


class SandboxAccount(models.Model):
    name = models.CharField(_("名称"), max_length=80)
    app_id = models.CharField(_("App ID"), max_length=80, unique=True)
    # The signing secret shared with the caller, encrypted with the vault keys.
    app_secret_ciphertext = models.BinaryField(_("密钥密文"), editable=False)
    app_secret_key_id = models.CharField(max_length=32, editable=False)
    balance = models.DecimalField(_("余额"), **MONEY, default=Decimal("0.00"))
    is_active = models.BooleanField(_("启用"), default=True)
    latency_ms = models.PositiveIntegerField(_("模拟延迟（毫秒）"), default=0)
    failure_rate = models.DecimalField(
        _("模拟失败率"), max_digits=4, decimal_places=3, default=Decimal(0), help_text=_("0 到 1 之间，例如 0.2 表示 20% 的订单失败")
    )
    pending_rate = models.DecimalField(
        _("模拟处理中比例"), max_digits=4, decimal_places=3, default=Decimal(0),
        help_text=_("0 到 1 之间：这部分订单先返回“处理中”，查询时才给出结果"),
    )
    created_at = created_at_field()

    class Meta:
        verbose_name = _("沙箱货源账户")
        verbose_name_plural = _("沙箱货源账户")
        constraints = [
            models.CheckConstraint(condition=Q(balance__gte=0), name="sandbox_balance_not_negative"),
            models.CheckConstraint(condition=Q(failure_rate__gte=0, failure_rate__lte=1), name="sandbox_failure_rate_range"),
            models.CheckConstraint(condition=Q(pending_rate__gte=0, pending_rate__lte=1), name="sandbox_pending_rate_range"),
        ]

    def __str__(self):
        return f"{self.name} ({self.app_id})"


class SandboxSku(models.Model):
    sku = models.CharField(_("商品编号"), max_length=80, unique=True)
    name = models.CharField(_("名称"), max_length=120)
    price = models.DecimalField(_("供货价"), **MONEY)
    # None: unlimited stock.
    stock = models.PositiveIntegerField(_("库存"), null=True, blank=True, help_text=_("留空表示不限"))
    is_out_of_stock = models.BooleanField(_("模拟缺货"), default=False)
    updated_at = updated_at_field()

    class Meta:
        verbose_name = _("沙箱货源商品")
        verbose_name_plural = _("沙箱货源商品")
        ordering = ["sku"]
        constraints = [models.CheckConstraint(condition=Q(price__gt=0), name="sandbox_sku_price_positive")]

    def __str__(self):
        return f"{self.sku} {self.name}"

    @property
    def is_in_stock(self) -> bool:
        return not self.is_out_of_stock and (self.stock is None or self.stock > 0)


class SandboxOrderStatus(models.TextChoices):
    PROCESSING = "processing", _("处理中")
    SUCCESS = "success", _("成功")
    FAILED = "failed", _("失败")


class SandboxOrder(models.Model):
    account = models.ForeignKey(SandboxAccount, verbose_name=_("账户"), on_delete=models.CASCADE, related_name="orders")
    out_order_no = models.CharField(_("调用方订单号"), max_length=80)
    order_no = models.CharField(_("沙箱订单号"), max_length=40, unique=True)
    sku = models.CharField(_("商品编号"), max_length=80)
    target = models.CharField(_("充值账号"), max_length=120)
    quantity = models.PositiveIntegerField(_("数量"))
    amount = models.DecimalField(_("扣款金额"), **MONEY)
    status = models.CharField(_("状态"), max_length=20, choices=SandboxOrderStatus.choices)
    message = models.CharField(_("说明"), max_length=200, blank=True)
    created_at = created_at_field()

    class Meta:
        verbose_name = _("沙箱货源订单")
        verbose_name_plural = _("沙箱货源订单")
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "out_order_no"], name="sandbox_order_idempotent"),
        ]

    def __str__(self):
        return self.order_no
