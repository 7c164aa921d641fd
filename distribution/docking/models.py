"""Docking sites, their API keys, spent nonces and the webhook outbox (docs/adr/0019)."""

from decimal import Decimal

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from kamen.models import actor_field, created_at_field, status_check, updated_at_field
from kamen.money import MONEY


class DockingSiteStatus(models.TextChoices):
    APPLIED = "applied", _("待审核")
    ACTIVE = "active", _("正常")
    SUSPENDED = "suspended", _("已暂停")
    REJECTED = "rejected", _("已拒绝")


class ApiScope(models.TextChoices):
    CATALOG_READ = "catalog:read", _("读取商品")
    ORDERS_CREATE = "orders:create", _("下单")
    ORDERS_READ = "orders:read", _("查询订单")
    REFUNDS_CREATE = "refunds:create", _("申请退款")


class DockingSite(models.Model):
    """A downstream site (对接商户): one distributor of the network buying through the API.

    Its price is its distributor's cost (grade, per-product price, volume tiers). It pays from
    its prepaid balance (预存款, a ledger account of the commissions app) and may go below zero
    down to ``-credit_limit``."""

    distributor = models.OneToOneField(
        "distribution.Distributor",
        verbose_name=_("分销商"),
        on_delete=models.PROTECT,
        related_name="docking_site",
    )
    name = models.CharField(_("站点名称"), max_length=60)
    contact_email = models.EmailField(_("联系邮箱"))
    status = models.CharField(
        _("状态"), max_length=12, choices=DockingSiteStatus.choices, default=DockingSiteStatus.APPLIED
    )
    credit_limit = models.DecimalField(_("信用额度"), **MONEY, default=Decimal("0.00"))
    ip_allowlist = models.JSONField(
        _("IP 白名单"), default=list, blank=True, help_text=_("IP 或网段（CIDR）列表；留空表示不限")
    )
    webhook_url = models.URLField(_("回调地址"), max_length=300, blank=True)
    webhook_secret_ciphertext = models.BinaryField(_("回调密钥密文"), null=True, blank=True, editable=False)
    webhook_secret_key_id = models.CharField(max_length=32, blank=True, editable=False)
    requests_per_minute = models.PositiveIntegerField(_("每分钟请求上限（每个密钥）"), default=600)
    order_limit = models.PositiveIntegerField(
        _("风控：每个窗口的订单上限"),
        null=True,
        blank=True,
        help_text=_("超过后该站点的 API 订单转人工审核；留空使用风控规则“对接站点下单频率”的阈值与窗口"),
    )
    approved_by = actor_field(_("审核人"))
    approved_at = models.DateTimeField(_("审核时间"), null=True, blank=True)
    created_at = created_at_field()
    updated_at = updated_at_field()

    class Meta:
        verbose_name = _("对接商户")
        verbose_name_plural = _("对接商户")
        ordering = ["-created_at", "-id"]
        permissions = [
            ("approve_dockingsite", _("可以审核对接商户")),
            ("manage_api_keys", _("可以管理对接密钥")),
            ("top_up_prepaid", _("可以为对接商户充值预存款")),
        ]
        constraints = [
            status_check("status", DockingSiteStatus, name="docking_site_status_known"),
            models.CheckConstraint(condition=Q(credit_limit__gte=0), name="docking_site_credit_not_negative"),
            models.CheckConstraint(condition=Q(requests_per_minute__gte=1), name="docking_site_rate_positive"),
            models.CheckConstraint(
                condition=Q(order_limit__isnull=True) | Q(order_limit__gte=1), name="docking_site_order_limit_positive"
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status == DockingSiteStatus.ACTIVE


class ApiKey(models.Model):
    """One credential of a site: ``key_id`` is public, the secret is shown once and kept
    encrypted with the vault's keys (needed in plaintext to check HMAC signatures)."""

    site = models.ForeignKey(DockingSite, verbose_name=_("对接商户"), on_delete=models.CASCADE, related_name="api_keys")
    key_id = models.CharField(_("密钥 ID"), max_length=40)
    secret_ciphertext = models.BinaryField(_("密钥密文"), editable=False)
    secret_key_id = models.CharField(max_length=32, editable=False)
    label = models.CharField(_("备注"), max_length=40, blank=True)
    scopes = models.JSONField(_("权限范围"), default=list)
    is_active = models.BooleanField(_("有效"), default=True)
    revoked_at = models.DateTimeField(_("吊销时间"), null=True, blank=True)
    revoked_by = actor_field(_("吊销人"))
    last_used_at = models.DateTimeField(_("最近使用"), null=True, blank=True)
    created_by = actor_field(_("创建人"))
    created_at = created_at_field()

    class Meta:
        verbose_name = _("对接密钥")
        verbose_name_plural = _("对接密钥")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["key_id"], name="api_key_id_unique"),
            models.CheckConstraint(
                condition=Q(is_active=True) | Q(revoked_at__isnull=False), name="api_key_revoked_has_time"
            ),
        ]

    def __str__(self):
        return self.key_id


class ApiNonce(models.Model):
    """A nonce a signed request used: the unique constraint makes it single-use on every host.
    Kept past the signing window (``expires_at``), then purged: an older request is refused by
    its timestamp anyway."""

    key_id = models.CharField(max_length=40)
    nonce = models.CharField(max_length=64)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name = _("请求随机数")
        verbose_name_plural = _("请求随机数")
        constraints = [models.UniqueConstraint(fields=["key_id", "nonce"], name="api_nonce_single_use")]

    def __str__(self):
        return f"{self.key_id}:{self.nonce}"


class WebhookEventKind(models.TextChoices):
    ORDER_DELIVERED = "order.delivered", _("订单已发货")
    ORDER_REFUNDED = "order.refunded", _("订单已退款")
    PRODUCT_PRICE_CHANGED = "product.price_changed", _("商品价格变动")
    PRODUCT_STOCK_CHANGED = "product.stock_changed", _("商品库存变动")
    PRODUCT_DELISTED = "product.delisted", _("商品下架")


class WebhookStatus(models.TextChoices):
    PENDING = "pending", _("待发送")
    DELIVERED = "delivered", _("已送达")
    GAVE_UP = "gave_up", _("已放弃")


class WebhookEvent(models.Model):
    """The outbox: one event for one site, written in the transaction of the change it reports
    (so neither a Redis outage nor a receiver that is down loses it), delivered by a Celery
    task with exponential backoff for 24 hours. ``event_id`` lets the receiver drop repeats."""

    event_id = models.CharField(_("事件 ID"), max_length=40)
    site = models.ForeignKey(
        DockingSite, verbose_name=_("对接商户"), on_delete=models.CASCADE, related_name="webhook_events"
    )
    kind = models.CharField(_("事件类型"), max_length=32, choices=WebhookEventKind.choices)
    payload = models.JSONField(_("内容"), default=dict)
    status = models.CharField(_("状态"), max_length=12, choices=WebhookStatus.choices, default=WebhookStatus.PENDING)
    attempts = models.PositiveIntegerField(_("尝试次数"), default=0)
    next_attempt_at = models.DateTimeField(_("下次尝试"), default=timezone.now)
    last_status_code = models.PositiveIntegerField(_("最近响应码"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("送达时间"), null=True, blank=True)
    created_at = created_at_field()

    class Meta:
        verbose_name = _("回调事件")
        verbose_name_plural = _("回调事件")
        ordering = ["-created_at", "-id"]
        permissions = [("resend_webhookevent", _("可以重发回调"))]
        constraints = [
            models.UniqueConstraint(fields=["event_id"], name="webhook_event_id_unique"),
            status_check("kind", WebhookEventKind, name="webhook_event_kind_known"),
            status_check("status", WebhookStatus, name="webhook_event_status_known"),
        ]
        indexes = [
            models.Index(fields=["next_attempt_at"], condition=Q(status="pending"), name="webhook_event_due_idx"),
        ]

    def __str__(self):
        return f"{self.kind} {self.event_id}"


class WebhookAttempt(models.Model):
    """The delivery log: every try, with the receiver's response code (or why there was none)."""

    event = models.ForeignKey(
        WebhookEvent, verbose_name=_("回调事件"), on_delete=models.CASCADE, related_name="delivery_attempts"
    )
    status_code = models.PositiveIntegerField(_("响应码"), null=True, blank=True)
    error = models.CharField(_("错误"), max_length=200, blank=True)
    duration_ms = models.PositiveIntegerField(_("耗时（毫秒）"), default=0)
    is_manual = models.BooleanField(_("人工重发"), default=False)
    created_at = created_at_field(_("时间"))

    class Meta:
        verbose_name = _("回调记录")
        verbose_name_plural = _("回调记录")
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.event_id}: {self.status_code or self.error}"


class DockingProductSnapshot(models.Model):
    """What a site was last told about a product (its price, stock, listed or not): the
    product-event job compares the catalog with it and writes an event for each difference,
    in the same transaction as the new snapshot, so every change is reported once."""

    site = models.ForeignKey(DockingSite, on_delete=models.CASCADE, related_name="product_snapshots")
    product = models.ForeignKey("catalog.Product", on_delete=models.CASCADE, related_name="+")
    price = models.DecimalField(**MONEY)
    stock = models.IntegerField(null=True, blank=True)
    in_stock = models.BooleanField(default=True)
    is_listed = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("对接商品快照")
        verbose_name_plural = _("对接商品快照")
        constraints = [models.UniqueConstraint(fields=["site", "product"], name="docking_snapshot_unique")]

    def __str__(self):
        return f"{self.site_id}:{self.product_id}"
