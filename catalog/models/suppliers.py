"""Upstream suppliers (货源) and the channels through which a product is sourced."""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from .products import MONEY, Product


class SupplierAdapter(models.TextChoices):
    SANDBOX = "sandbox", _("Kamen 沙箱货源")


class Supplier(models.Model):
    name = models.CharField(_("名称"), max_length=80, unique=True)
    adapter = models.CharField(_("对接类型"), max_length=20, choices=SupplierAdapter.choices, default=SupplierAdapter.SANDBOX)
    base_url = models.URLField(_("接口地址"), max_length=300)
    app_id = models.CharField(_("App ID"), max_length=80)
    # The signing secret, encrypted with the vault keys; never shown or logged.
    app_secret_ciphertext = models.BinaryField(_("密钥密文"), editable=False)
    app_secret_key_id = models.CharField(max_length=32, editable=False)
    is_active = models.BooleanField(_("启用"), default=True)
    balance = models.DecimalField(_("余额"), **MONEY, null=True, blank=True)
    low_balance_threshold = models.DecimalField(_("余额预警值"), **MONEY, null=True, blank=True)
    balance_synced_at = models.DateTimeField(_("余额同步时间"), null=True, blank=True)
    prices_synced_at = models.DateTimeField(_("价格同步时间"), null=True, blank=True)
    last_sync_error = models.CharField(_("最近同步错误"), max_length=300, blank=True)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("货源")
        verbose_name_plural = _("货源")
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(adapter__in=SupplierAdapter.values), name="supplier_adapter_known"),
        ]

    def __str__(self):
        return self.name


class SupplierChannel(models.Model):
    """One way to source a product: a supplier's SKU at a cost, tried in priority order."""

    product = models.ForeignKey(Product, verbose_name=_("商品"), on_delete=models.CASCADE, related_name="supplier_channels")
    supplier = models.ForeignKey(Supplier, verbose_name=_("货源"), on_delete=models.PROTECT, related_name="channels")
    supplier_sku = models.CharField(_("货源商品编号"), max_length=80)
    priority = models.PositiveIntegerField(_("优先级"), default=10, help_text=_("数字越小越优先"))
    cost = models.DecimalField(_("进货价"), **MONEY)
    is_active = models.BooleanField(_("启用"), default=True)
    is_in_stock = models.BooleanField(_("货源有货"), default=True)
    consecutive_failures = models.PositiveIntegerField(_("连续失败次数"), default=0)
    circuit_open_until = models.DateTimeField(_("熔断至"), null=True, blank=True)
    last_success_at = models.DateTimeField(_("最近成功"), null=True, blank=True)
    last_failure_at = models.DateTimeField(_("最近失败"), null=True, blank=True)
    last_error = models.CharField(_("最近错误"), max_length=300, blank=True)
    cost_synced_at = models.DateTimeField(_("价格同步时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("货源渠道")
        verbose_name_plural = _("货源渠道")
        ordering = ["product", "priority", "id"]
        constraints = [
            models.UniqueConstraint(fields=["product", "supplier", "supplier_sku"], name="supplier_channel_unique"),
            models.CheckConstraint(condition=Q(cost__gte=0), name="supplier_channel_cost_not_negative"),
        ]

    def __str__(self):
        return f"{self.product} ← {self.supplier} ({self.supplier_sku})"


class SupplierPriceChange(models.Model):
    """What a price sync found: an append-only history the merchant can look back on."""

    channel = models.ForeignKey(SupplierChannel, verbose_name=_("渠道"), on_delete=models.CASCADE, related_name="price_changes")
    old_cost = models.DecimalField(_("原进货价"), **MONEY)
    new_cost = models.DecimalField(_("新进货价"), **MONEY)
    created_at = models.DateTimeField(_("时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("进货价变动")
        verbose_name_plural = _("进货价变动")
        ordering = ["-created_at"]
