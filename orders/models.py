"""Orders: one product line per order (the 发卡网 norm), its price and attribution snapshotted.

The status is changed only by ``orders.services.state.transition_order``; every change leaves
an ``OrderStatusChange`` row (old, new, cause, actor).
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

MONEY = {"max_digits": 14, "decimal_places": 2}


class OrderStatus(models.TextChoices):
    PENDING_PAYMENT = "pending_payment", _("待支付")
    PAID = "paid", _("已支付")
    FULFILLING = "fulfilling", _("发货中")
    BACKORDERED = "backordered", _("缺货待补")
    COMPLETED = "completed", _("已完成")
    PARTIALLY_FULFILLED = "partially_fulfilled", _("部分发货")
    FAILED = "failed", _("发货失败")
    REFUNDED = "refunded", _("已退款")
    PARTIALLY_REFUNDED = "partially_refunded", _("部分退款")
    EXPIRED = "expired", _("已过期")


class ContactKind(models.TextChoices):
    EMAIL = "email", _("邮箱")
    MOBILE = "mobile", _("手机号")


class Order(models.Model):
    order_no = models.CharField(_("订单号"), max_length=32, unique=True)
    status = models.CharField(
        _("状态"), max_length=24, choices=OrderStatus.choices, default=OrderStatus.PENDING_PAYMENT
    )
    product = models.ForeignKey(
        "catalog.Product", verbose_name=_("商品"), on_delete=models.PROTECT, related_name="orders"
    )
    # Snapshot at checkout: later catalog edits never change what this order was sold as.
    product_name = models.CharField(_("商品名称"), max_length=120)
    product_type = models.CharField(_("商品类型"), max_length=20)
    quantity = models.PositiveIntegerField(_("数量"))
    unit_price = models.DecimalField(_("单价"), **MONEY)
    total_amount = models.DecimalField(_("应付金额"), **MONEY)
    cost_amount = models.DecimalField(_("成本"), **MONEY, default=0)
    paid_amount = models.DecimalField(_("实付金额"), **MONEY, default=0)
    refunded_amount = models.DecimalField(_("已退金额"), **MONEY, default=0)
    contact = models.CharField(_("联系方式"), max_length=120)
    contact_kind = models.CharField(_("联系方式类型"), max_length=10, choices=ContactKind.choices)
    query_password_hash = models.CharField(_("查单密码（哈希）"), max_length=128)
    buyer_fields = models.JSONField(_("买家填写信息"), default=dict, blank=True)
    recharge_target = models.CharField(_("充值账号"), max_length=120, blank=True)
    # Attribution snapshot (the distribution network fills these through its hook).
    distributor_id = models.BigIntegerField(_("归属分销商"), null=True, blank=True, db_index=True)
    attribution = models.JSONField(_("归属快照"), default=dict, blank=True)
    channel = models.CharField(_("推广渠道"), max_length=20, blank=True)
    checkout_token = models.CharField(_("下单令牌"), max_length=64, null=True, blank=True, unique=True)
    payment_gateway = models.CharField(_("支付方式"), max_length=20, blank=True)
    buyer_ip = models.GenericIPAddressField(_("下单 IP"), null=True, blank=True)
    created_at = models.DateTimeField(_("下单时间"), auto_now_add=True, db_index=True)
    expires_at = models.DateTimeField(_("支付截止"))
    paid_at = models.DateTimeField(_("支付时间"), null=True, blank=True)
    completed_at = models.DateTimeField(_("完成时间"), null=True, blank=True)
    status_changed_at = models.DateTimeField(_("状态变更时间"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("订单")
        verbose_name_plural = _("订单")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=OrderStatus.values), name="order_status_known"),
            models.CheckConstraint(condition=Q(quantity__gte=1), name="order_quantity_positive"),
            models.CheckConstraint(condition=Q(total_amount__gt=0), name="order_total_positive"),
            models.CheckConstraint(condition=Q(paid_amount__gte=0), name="order_paid_not_negative"),
            models.CheckConstraint(
                condition=Q(refunded_amount__gte=0) & Q(refunded_amount__lte=F("paid_amount")),
                name="order_refund_within_paid",
            ),
            models.CheckConstraint(
                condition=Q(paid_at__isnull=True) | Q(paid_amount__gt=0), name="order_paid_has_amount"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "status_changed_at"], name="order_status_age_idx"),
            models.Index(fields=["contact", "created_at"], name="order_contact_idx"),
        ]

    def __str__(self):
        return self.order_no


class OrderStatusChange(models.Model):
    """Every transition, with its cause: the order's history, never edited."""

    order = models.ForeignKey(Order, verbose_name=_("订单"), on_delete=models.CASCADE, related_name="status_changes")
    old_status = models.CharField(_("原状态"), max_length=24, choices=OrderStatus.choices)
    new_status = models.CharField(_("新状态"), max_length=24, choices=OrderStatus.choices)
    cause = models.CharField(_("原因"), max_length=200)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("操作人"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(_("时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("订单状态变更")
        verbose_name_plural = _("订单状态变更")
        ordering = ["created_at", "id"]

    def __str__(self):
        return f"{self.order_id}: {self.old_status} → {self.new_status}"
