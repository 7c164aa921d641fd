"""Upstream suppliers (货源) and the channels through which a product is sourced."""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from kamen.models import created_at_field, status_check

from .products import MONEY, Product


class SupplierAdapter(models.TextChoices):
    SANDBOX = "sandbox", _("Kamen 沙箱货源")
    KAMEN_API = "kamen_api", _("Kamen 开放接口（对接其他 Kamen 站点）")


class Supplier(models.Model):
    name = models.CharField(_("名称"), max_length=80, unique=True)
    adapter = models.CharField(_("对接类型"), max_length=20, choices=SupplierAdapter.choices, default=SupplierAdapter.SANDBOX)
    # A full URL, or a path on this site resolved against SITE_URL when called (catalog.services
    # checks which); a CharField because URLField's validator refuses both a path and in-cluster
    # host names.
    base_url = models.CharField(_("接口地址"), max_length=300)
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
    # An upstream Kamen signs its webhooks with this secret (its staff set our callback URL and
    # gave it to us); encrypted with the vault keys like the app secret, never shown or logged.
    webhook_secret_ciphertext = models.BinaryField(_("回调密钥密文"), null=True, blank=True, editable=False)
    webhook_secret_key_id = models.CharField(max_length=32, blank=True, editable=False)
    created_at = created_at_field()

    class Meta:
        verbose_name = _("货源")
        verbose_name_plural = _("货源")
        ordering = ["name"]
        constraints = [
            status_check("adapter", SupplierAdapter, name="supplier_adapter_known"),
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
    # Above this cost the channel is skipped; empty: the product's ceiling, else its retail price.
    cost_ceiling = models.DecimalField(_("成本上限"), **MONEY, null=True, blank=True, help_text=_("留空表示使用商品的成本上限或零售价"))
    # Docked from an upstream Kamen: its stock count, and the merchant's markup rule by which
    # the product's price follows the upstream's (catalog.services.upstream; empty: fixed price).
    upstream_stock = models.PositiveIntegerField(_("上游库存"), null=True, blank=True)
    markup_kind = models.CharField(_("加价方式"), max_length=10, blank=True)
    markup_value = models.DecimalField(_("加价"), **MONEY, null=True, blank=True)
    markup_rounding = models.CharField(_("取整"), max_length=5, blank=True)

    class Meta:
        verbose_name = _("货源渠道")
        verbose_name_plural = _("货源渠道")
        ordering = ["product", "priority", "id"]
        constraints = [
            models.UniqueConstraint(fields=["product", "supplier", "supplier_sku"], name="supplier_channel_unique"),
            models.CheckConstraint(condition=Q(cost__gte=0), name="supplier_channel_cost_not_negative"),
            models.CheckConstraint(
                condition=Q(cost_ceiling__isnull=True) | Q(cost_ceiling__gte=0), name="supplier_channel_ceiling_not_negative"
            ),
        ]

    def __str__(self):
        return f"{self.product} ← {self.supplier} ({self.supplier_sku})"


class SupplierPriceChange(models.Model):
    """What a price sync found: an append-only history the merchant can look back on."""

    channel = models.ForeignKey(SupplierChannel, verbose_name=_("渠道"), on_delete=models.CASCADE, related_name="price_changes")
    old_cost = models.DecimalField(_("原进货价"), **MONEY)
    new_cost = models.DecimalField(_("新进货价"), **MONEY)
    created_at = created_at_field(_("时间"))

    class Meta:
        verbose_name = _("进货价变动")
        verbose_name_plural = _("进货价变动")
        ordering = ["-created_at"]


class RechargeAttemptStatus(models.TextChoices):
    # Committed before the HTTP call: if the process dies here, nobody knows what the supplier did.
    SENDING = "sending", _("发送中")
    SUCCEEDED = "succeeded", _("成功")
    FAILED = "failed", _("失败")
    OUT_OF_STOCK = "out_of_stock", _("缺货")
    # The supplier did not say (timeout, 5xx, still processing): query before going elsewhere.
    PENDING = "pending", _("结果未知")


class SupplierRechargeAttempt(models.Model):
    """One try of one top-up through one channel. Written and committed before the supplier is
    called, so a crash can never hide an order the supplier may have carried out."""

    reference = models.CharField(_("业务单号"), max_length=64, db_index=True)
    channel = models.ForeignKey(SupplierChannel, verbose_name=_("渠道"), on_delete=models.PROTECT, related_name="attempts")
    supplier = models.ForeignKey(Supplier, verbose_name=_("货源"), on_delete=models.PROTECT, related_name="attempts")
    product = models.ForeignKey(Product, verbose_name=_("商品"), on_delete=models.PROTECT, related_name="supplier_attempts")
    out_order_no = models.CharField(_("我方订单号"), max_length=80, unique=True)
    target = models.CharField(_("充值账号"), max_length=120)
    quantity = models.PositiveIntegerField(_("数量"))
    status = models.CharField(_("状态"), max_length=20, choices=RechargeAttemptStatus.choices, default=RechargeAttemptStatus.SENDING)
    supplier_order_no = models.CharField(_("货源订单号"), max_length=80, blank=True)
    cost = models.DecimalField(_("实际成本"), **MONEY, null=True, blank=True)
    message = models.CharField(_("说明"), max_length=300, blank=True)
    created_at = created_at_field()
    finished_at = models.DateTimeField(_("完成时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("直充请求")
        verbose_name_plural = _("直充请求")
        ordering = ["-id"]
        constraints = [
            # One open or successful try per channel; a refused one may be tried again later
            # (a back-order retried when the upstream is back) under a new out_order_no.
            models.UniqueConstraint(
                fields=["reference", "channel"],
                condition=Q(status__in=["sending", "pending", "succeeded"]),
                name="supplier_attempt_one_open_per_channel",
            ),
            # At most one success per reference: the buyer is never topped up twice.
            models.UniqueConstraint(
                fields=["reference"], condition=Q(status="succeeded"), name="supplier_attempt_one_success"
            ),
            models.CheckConstraint(condition=Q(quantity__gte=1), name="supplier_attempt_quantity_positive"),
        ]

    def __str__(self):
        return f"{self.reference} → {self.supplier} ({self.get_status_display()})"


class SupplierAlertKind(models.TextChoices):
    LOW_BALANCE = "low_balance", _("货源余额不足")
    COST_REACHED_PRICE = "cost_reached_price", _("进货价达到售价")
    CHANNEL_CIRCUIT_OPEN = "channel_circuit_open", _("渠道熔断")
    SYNC_FAILED = "sync_failed", _("同步失败")


class SupplierAlert(models.Model):
    """A condition the merchant should know about; one open alert per (kind, supplier, product),
    resolved when the condition clears, so a sync running every few minutes never spams."""

    kind = models.CharField(_("类型"), max_length=30, choices=SupplierAlertKind.choices)
    supplier = models.ForeignKey(Supplier, verbose_name=_("货源"), on_delete=models.CASCADE, null=True, blank=True, related_name="alerts")
    product = models.ForeignKey(Product, verbose_name=_("商品"), on_delete=models.CASCADE, null=True, blank=True, related_name="supplier_alerts")
    message = models.CharField(_("内容"), max_length=300)
    created_at = created_at_field(_("时间"))
    emailed_at = models.DateTimeField(_("邮件通知时间"), null=True, blank=True)
    resolved_at = models.DateTimeField(_("解除时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("货源预警")
        verbose_name_plural = _("货源预警")
        ordering = ["-created_at"]
        # NULLs are distinct in a unique index, so each shape of alert gets its own constraint.
        constraints = [
            status_check("kind", SupplierAlertKind, name="supplier_alert_kind_known"),
            models.UniqueConstraint(
                fields=["kind", "supplier", "product"],
                condition=Q(resolved_at__isnull=True, supplier__isnull=False, product__isnull=False),
                name="supplier_alert_one_open",
            ),
            models.UniqueConstraint(
                fields=["kind", "supplier"],
                condition=Q(resolved_at__isnull=True, product__isnull=True),
                name="supplier_alert_one_open_per_supplier",
            ),
            models.UniqueConstraint(
                fields=["kind", "product"],
                condition=Q(resolved_at__isnull=True, supplier__isnull=True),
                name="supplier_alert_one_open_per_product",
            ),
        ]

    def __str__(self):
        return f"{self.get_kind_display()}: {self.message}"


class UpstreamWebhookReceipt(models.Model):
    """A webhook event an upstream Kamen sent us, kept under its event id so that a repeated
    delivery (the upstream retries until it hears 2xx) is applied once."""

    supplier = models.ForeignKey(Supplier, verbose_name=_("货源"), on_delete=models.CASCADE, related_name="webhook_receipts")
    event_id = models.CharField(_("事件编号"), max_length=64)
    kind = models.CharField(_("事件类型"), max_length=40)
    payload = models.JSONField(_("内容"), default=dict)
    outcome = models.CharField(_("处理结果"), max_length=200, blank=True)
    received_at = models.DateTimeField(_("接收时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("上游回调")
        verbose_name_plural = _("上游回调")
        constraints = [
            models.UniqueConstraint(fields=["supplier", "event_id"], name="upstream_webhook_receipt_once"),
        ]

    def __str__(self):
        return f"{self.supplier_id}:{self.event_id}"
