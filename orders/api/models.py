"""The open API's tables: which site placed which order under which number of its own, and the
refund requests sites send for staff review."""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from kamen.models import actor_field, created_at_field, status_check


class DockingOrder(models.Model):
    """An order a docking site placed through the API, under its own ``client_order_no``.

    ``UniqueConstraint(site, client_order_no)`` makes placing idempotent: the same number twice
    is one order, whatever the timing, and the second call is answered with the first order."""

    site = models.ForeignKey(
        "distribution.DockingSite", verbose_name=_("对接商户"), on_delete=models.PROTECT, related_name="orders"
    )
    order = models.OneToOneField(
        "orders.Order", verbose_name=_("订单"), on_delete=models.PROTECT, related_name="docking"
    )
    client_order_no = models.CharField(_("商户订单号"), max_length=64)
    # What was asked (product, quantity, target, fields): a second call with the same number
    # but another request is refused rather than answered with an order it did not ask for.
    request_fingerprint = models.CharField(max_length=64)
    created_at = created_at_field(_("下单时间"))

    class Meta:
        verbose_name = _("对接订单")
        verbose_name_plural = _("对接订单")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["site", "client_order_no"], name="docking_order_client_no_unique"),
        ]

    def __str__(self):
        return f"{self.site_id}:{self.client_order_no}"


class ApiRefundStatus(models.TextChoices):
    PENDING = "pending", _("待审核")
    APPROVED = "approved", _("已同意")
    REJECTED = "rejected", _("已驳回")


class ApiRefundRequest(models.Model):
    """A docking site's refund request: staff review it in the console (the refund itself goes
    through ``orders.services.refunds`` and back to the prepaid balance)."""

    docking_order = models.ForeignKey(
        DockingOrder, verbose_name=_("对接订单"), on_delete=models.PROTECT, related_name="refund_requests"
    )
    reason = models.CharField(_("原因"), max_length=200)
    status = models.CharField(
        _("状态"), max_length=10, choices=ApiRefundStatus.choices, default=ApiRefundStatus.PENDING
    )
    decided_by = actor_field(_("处理人"))
    decided_at = models.DateTimeField(_("处理时间"), null=True, blank=True)
    created_at = created_at_field(_("申请时间"))

    class Meta:
        verbose_name = _("对接退款申请")
        verbose_name_plural = _("对接退款申请")
        ordering = ["-created_at", "-id"]
        constraints = [
            status_check("status", ApiRefundStatus, name="api_refund_status_known"),
            models.UniqueConstraint(
                fields=["docking_order"], condition=Q(status="pending"), name="api_refund_one_pending"
            ),
        ]

    def __str__(self):
        return f"{self.docking_order} · {self.get_status_display()}"
