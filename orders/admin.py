"""Orders in the merchant console.

Everything here is read-only: an order's status, payments, callbacks, deliveries and refunds are
history, changed only by the pipeline's services. Staff act on an order through three small
forms that call those services — 补单 (confirm a payment by hand), refund, re-drive fulfilment —
each behind its own permission. Secrets never appear: deliveries show a masked card number and
a link to the audited reveal page; vouchers show the last four characters of their code.
"""

import inspect
import json
import logging
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from kamen import parsing

from . import admin_review  # noqa: F401 (registers the review queue)
from .models import (
    DepositPayment,
    GatewayStatement,
    Order,
    OrderDelivery,
    OrderStatusChange,
    PaymentAttempt,
    PaymentCallback,
    Refund,
    StatementDifference,
    StatementStatus,
    Voucher,
    VoucherRedemption,
)
from .services.lookup import mask_contact, normalise_contact

logger = logging.getLogger(__name__)


# --- the pipeline's services, imported when used (they live on the pipeline's modules) ------


def _call(function, **kwargs):
    """Call a service with the keyword arguments it accepts (``request`` is optional)."""
    accepted = inspect.signature(function).parameters
    return function(**{name: value for name, value in kwargs.items() if name in accepted})


def confirm_payment_manually(**kwargs):
    from orders.services.payments import confirm_payment_manually as service

    return _call(service, **kwargs)


def refund_order(**kwargs):
    from orders.services.refunds import refund_order as service

    return _call(service, **kwargs)


def redrive_fulfilment(**kwargs):
    from orders.services.staff_actions import redrive_fulfilment as service

    return _call(service, **kwargs)


def staff_actions_for(*, order: Order) -> frozenset[str]:
    from orders.services.staff_actions import staff_actions_for as selector

    return selector(order=order)


def action_refusal(*, order: Order, action: str) -> str:
    """The message refusing ``action`` on ``order`` in its state, "" when it applies."""
    from orders.services.staff_actions import require_staff_action

    try:
        require_staff_action(order=order, action=action)
    except ValidationError as error:
        return " ".join(error.messages)
    return ""


# --- read-only building blocks ----------------------------------------------------------------


class ReadOnlyMixin:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyInline(ReadOnlyMixin, admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("orders.view_order")


def _pre(value) -> str:
    return format_html("<pre style='white-space:pre-wrap;max-width:60em'>{}</pre>", value)


class StatusChangeInline(ReadOnlyInline):
    model = OrderStatusChange
    verbose_name_plural = _("状态历史")
    fields = ["created_at", "old_status", "new_status", "cause", "actor"]
    readonly_fields = fields
    ordering = ["created_at", "id"]


class PaymentAttemptInline(ReadOnlyInline):
    model = PaymentAttempt
    fields = ["created_at", "gateway", "out_trade_no", "gateway_trade_no", "amount", "status", "updated_at"]
    readonly_fields = fields


class PaymentCallbackInline(ReadOnlyInline):
    model = PaymentCallback
    fk_name = "order"
    fields = [
        "received_at",
        "gateway",
        "source",
        "event_id",
        "amount",
        "currency",
        "is_verified",
        "outcome",
        "rejection_reason",
        "times_received",
        "actor",
        "raw",
    ]
    readonly_fields = fields

    @admin.display(description=_("原始内容"))
    def raw(self, callback):
        payload = json.dumps(callback.payload, ensure_ascii=False, indent=2, default=str)
        return format_html(
            "<details><summary>{}</summary>{}{}</details>",
            gettext("展开"),
            _pre(payload),
            _pre(callback.raw_body[:5000]),
        )


class DeliveryInline(ReadOnlyInline):
    model = OrderDelivery
    fields = ["created_at", "product", "kind", "quantity", "card", "content", "message", "is_voided", "created_by"]
    readonly_fields = fields

    @admin.display(description=_("卡号"))
    def card(self, delivery):
        if delivery.card_key_id is None:
            return "—"
        return delivery.card_key.masked_card_no or f"#{delivery.card_key_id}"

    @admin.display(description=_("内容"))
    def content(self, delivery):
        if delivery.card_key_id is not None:
            return format_html(
                '•••••• <a href="{}">{}</a>',
                reverse("console:card-key-reveal", args=[delivery.card_key_id]),
                gettext("查看（需权限，留审计）"),
            )
        return "••••••" if delivery.content_ciphertext else "—"


class RefundInline(ReadOnlyInline):
    model = Refund
    fields = ["created_at", "amount", "status", "reason", "restock", "gateway", "out_refund_no", "failure_reason", "actor", "finished_at"]
    readonly_fields = fields


class VoucherInline(ReadOnlyInline):
    model = Voucher
    fields = ["product", "sequence", "masked_code", "requires_dynamic_code", "redeemed_at", "redeemed_by", "redeemed_store", "voided_at"]
    readonly_fields = fields

    @admin.display(description=_("券码"))
    def masked_code(self, voucher):
        return f"…{voucher.code_last4}"


# --- the order console ------------------------------------------------------------------------


class ConfirmPaymentForm(forms.Form):
    reason = forms.CharField(label=_("补单原因"), max_length=200, widget=forms.Textarea(attrs={"rows": 3}))


class RefundForm(forms.Form):
    amount = parsing.DecimalField(label=_("退款金额"), max_digits=14, decimal_places=2, min_value=0.01)
    reason = forms.CharField(label=_("退款原因"), max_length=200)
    restock = forms.BooleanField(label=_("卡密退回库存（否则作废）"), required=False)

    def __init__(self, *args, order: Order, **kwargs):
        super().__init__(*args, **kwargs)
        self.refundable = order.paid_amount - order.refunded_amount
        self.fields["amount"].initial = self.refundable

    def clean_amount(self):
        amount = self.cleaned_data["amount"]
        if amount > self.refundable:
            raise ValidationError(
                gettext("退款金额不能超过可退金额 ¥%(refundable)s") % {"refundable": self.refundable}
            )
        return amount


class RedriveForm(forms.Form):
    pass


def _posted(request):
    return request.POST if request.method == "POST" else None


@admin.register(Order)
class OrderAdmin(ReadOnlyMixin, admin.ModelAdmin):
    change_form_template = "orders/console_order_change_form.html"
    list_display = [
        "order_no",
        "product_name",
        "quantity",
        "total_amount",
        "paid_amount",
        "status",
        "payment_gateway",
        "masked_contact",
        "created_at",
    ]
    list_filter = ["status", "payment_gateway", "product", "created_at", "channel"]
    search_fields = ["order_no", "contact"]  # matched exactly, see get_search_results
    search_help_text = _("输入完整的订单号、邮箱或手机号")
    date_hierarchy = "created_at"
    list_select_related = ["product"]
    list_per_page = 50
    show_full_result_count = False
    actions = ["redrive_selected"]
    fieldsets = [
        (None, {"fields": ["order_no", "status", "status_changed_at", "created_at", "expires_at", "paid_at", "completed_at"]}),
        (
            _("商品与金额"),
            {"fields": ["product", "product_name", "product_type", "quantity", "unit_price", "total_amount", "cost_amount", "paid_amount", "refunded_amount", "payment_gateway"]},
        ),
        (_("买家"), {"fields": ["contact", "contact_kind", "buyer_fields_display", "recharge_target", "buyer_ip"]}),
        (_("归属"), {"fields": ["distributor_id", "channel", "attribution_display"]}),
        (_("发货"), {"fields": ["fulfilment_attempts", "last_fulfilment_error", "delivery_emailed_at"]}),
    ]
    readonly_fields = [field for _name, options in fieldsets for field in options["fields"]]
    inlines = [StatusChangeInline, PaymentAttemptInline, PaymentCallbackInline, DeliveryInline, RefundInline, VoucherInline]

    def get_search_results(self, request, queryset, search_term):
        """Exact matches only, so both look-ups use their index on a table of millions."""
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(Q(order_no=term.upper()) | Q(contact=normalise_contact(term))), False

    @admin.display(description=_("联系方式"), ordering="contact")
    def masked_contact(self, order):
        return mask_contact(order.contact)

    @admin.display(description=_("买家填写信息"))
    def buyer_fields_display(self, order):
        items = sorted((order.buyer_fields or {}).items())
        if not items:
            return "—"
        return format_html("<dl>{}</dl>", format_html_join("", "<dt>{}</dt><dd>{}</dd>", items))

    @admin.display(description=_("归属快照"))
    def attribution_display(self, order):
        return _pre(json.dumps(order.attribution or {}, ensure_ascii=False, indent=2, default=str))

    # Permissions for the three actions (Django looks these up for ``allowed_permissions``).
    def has_redrive_fulfilment_permission(self, request, obj=None):
        return request.user.has_perm("orders.redrive_fulfilment")

    def has_confirm_payment_manually_permission(self, request, obj=None):
        return request.user.has_perm("orders.confirm_payment_manually")

    def has_refund_order_permission(self, request, obj=None):
        return request.user.has_perm("orders.refund_order")

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("profit/", wrap(self.profit_view), name="orders_order_profit"),
            path("<path:object_id>/confirm-payment/", wrap(self.confirm_payment_view), name="orders_order_confirm_payment"),
            path("<path:object_id>/refund/", wrap(self.refund_view), name="orders_order_refund"),
            path("<path:object_id>/redrive/", wrap(self.redrive_view), name="orders_order_redrive"),
        ] + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """Each action is offered only with its permission and only when it applies to the
        order's state (the same table its service enforces)."""
        is_number = str(object_id).isascii() and str(object_id).isdigit()  # "²".isdigit() too
        order = Order.objects.filter(pk=object_id).first() if is_number else None
        applicable = staff_actions_for(order=order) if order is not None else frozenset()
        permitted = {
            "confirm_payment": self.has_confirm_payment_manually_permission(request),
            "refund": self.has_refund_order_permission(request),
            "redrive": self.has_redrive_fulfilment_permission(request),
        }
        extra_context = (extra_context or {}) | {
            f"can_{action}": permitted[action] and action in applicable for action in permitted
        }
        if order is not None:
            from .selectors import unexpected_payments

            extra_context["unexpected_payments"] = list(unexpected_payments(order=order))
            extra_context |= _order_books_context(request, order)
        return super().change_view(request, object_id, form_url, extra_context)

    def profit_view(self, request):
        """利润报表: profit, fee and cost summed from the ledger, by product, day or distributor."""
        return profit_report_view(self, request)

    # --- the three console forms ----------------------------------------------------------

    def _order_for(self, request, object_id, permission_check) -> Order:
        if not permission_check(request):
            raise PermissionDenied
        if not parsing.is_ascii_digits(object_id):  # the route takes any text: no such order
            raise Http404
        return get_object_or_404(Order.objects.select_related("product"), pk=object_id)

    def _render_action(self, request, order, *, title, form, intro, status=200, refusal=""):
        context = self.admin_site.each_context(request) | {
            "title": title,
            "order": order,
            "form": form,
            "intro": intro,
            "refusal": refusal,
            "opts": self.model._meta,
            "change_url": reverse("admin:orders_order_change", args=[order.pk]),
        }
        return TemplateResponse(request, "orders/console_order_action.html", context, status=status)

    def _back(self, order):
        return redirect("admin:orders_order_change", order.pk)

    def _run(self, request, form, order, action):
        """Run a service call; its ValidationError goes onto the form, other failures into a
        message. Returns True when it succeeded."""
        try:
            action()
        except ValidationError as error:
            for field, errors in (error.message_dict if hasattr(error, "error_dict") else {None: error.messages}).items():
                form.add_error(field if field in form.fields else None, errors)
            return False
        except PermissionDenied:
            raise
        except Exception as error:
            logger.exception("console.order_action_failed", extra={"order": order.order_no})
            form.add_error(None, gettext("操作失败：%(error)s") % {"error": error.__class__.__name__})
            return False
        return True

    def confirm_payment_view(self, request, object_id):
        order = self._order_for(request, object_id, self.has_confirm_payment_manually_permission)
        form = ConfirmPaymentForm(_posted(request))
        intro = gettext("买家已付款但没有收到支付回调时使用。补单与支付回调走同一流程，已支付的订单不会重复发货。")
        refusal = action_refusal(order=order, action="confirm_payment")
        if refusal:
            return self._refuse(request, order, title=gettext("人工补单"), intro=intro, refusal=refusal)
        if request.method == "POST" and form.is_valid():
            if self._run(
                request,
                form,
                order,
                lambda: confirm_payment_manually(
                    order=order, actor=request.user, reason=form.cleaned_data["reason"], request=request
                ),
            ):
                messages.success(request, gettext("已提交补单：%(order_no)s") % {"order_no": order.order_no})
                return self._back(order)
        status = 400 if request.method == "POST" else 200
        return self._render_action(request, order, title=gettext("人工补单"), form=form, intro=intro, status=status)

    def refund_view(self, request, object_id):
        order = self._order_for(request, object_id, self.has_refund_order_permission)
        form = RefundForm(_posted(request), order=order)
        intro = gettext("可退金额 ¥%(refundable)s。退款通过原支付渠道原路退回。") % {"refundable": form.refundable}
        refusal = action_refusal(order=order, action="refund")
        if refusal:
            return self._refuse(request, order, title=gettext("退款"), intro=intro, refusal=refusal)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            if self._run(
                request,
                form,
                order,
                lambda: refund_order(
                    order=order,
                    amount=data["amount"],
                    reason=data["reason"],
                    actor=request.user,
                    restock=data["restock"],
                    request=request,
                ),
            ):
                messages.success(request, gettext("已提交退款：¥%(amount)s") % {"amount": data["amount"]})
                return self._back(order)
        status = 400 if request.method == "POST" else 200
        return self._render_action(request, order, title=gettext("退款"), form=form, intro=intro, status=status)

    def redrive_view(self, request, object_id):
        order = self._order_for(request, object_id, self.has_redrive_fulfilment_permission)
        form = RedriveForm(_posted(request))
        intro = gettext("重新执行发货任务：已发出的部分不会重复发货。")
        refusal = action_refusal(order=order, action="redrive")
        if refusal:
            return self._refuse(request, order, title=gettext("重新发货"), intro=intro, refusal=refusal)
        if request.method == "POST" and form.is_valid():
            redrive = lambda: redrive_fulfilment(order=order, actor=request.user, request=request)  # noqa: E731
            if self._run(request, form, order, redrive):
                messages.success(request, gettext("已重新发起发货：%(order_no)s") % {"order_no": order.order_no})
                return self._back(order)
        status = 400 if request.method == "POST" else 200
        return self._render_action(request, order, title=gettext("重新发货"), form=form, intro=intro, status=status)

    def _refuse(self, request, order, *, title, intro, refusal):
        """An action that cannot apply to the order's state: the page says why and offers no
        form; a POST is answered 400 and changes nothing."""
        status = 400 if request.method == "POST" else 200
        return self._render_action(request, order, title=title, form=None, intro=intro, status=status, refusal=refusal)

    def _redrive(self, request, order: Order) -> bool:
        try:
            redrive_fulfilment(order=order, actor=request.user, request=request)
        except ValidationError as error:
            messages.warning(request, " ".join(error.messages))
            return False
        messages.success(request, gettext("已重新发起发货：%(order_no)s") % {"order_no": order.order_no})
        return True

    @admin.action(description=_("重新发货（已发出的部分不会重复）"), permissions=["redrive_fulfilment"])
    def redrive_selected(self, request, queryset):
        for order in queryset.order_by("pk")[:200]:
            self._redrive(request, order)


class NeedsRefundFilter(admin.SimpleListFilter):
    """Unexpected payments (money taken twice) that finance has to give back."""

    title = _("意外付款")
    parameter_name = "needs_refund"

    def lookups(self, request, model_admin):
        return [("yes", _("意外付款（需人工退款）"))]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            from .selectors import unexpected_payments

            return queryset.filter(pk__in=unexpected_payments().values("pk"))
        return queryset


@admin.register(PaymentCallback)
class PaymentCallbackAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Every notification as received — forged and rejected ones too, for review."""

    list_display = [
        "received_at",
        "gateway",
        "source",
        "source_ip",
        "event_id",
        "out_trade_no",
        "amount",
        "is_verified",
        "outcome",
        "rejection_reason",
        "times_received",
    ]
    list_filter = [NeedsRefundFilter, "outcome", "gateway", "source", "is_verified", "received_at"]
    search_fields = ["=out_trade_no", "=event_id"]
    date_hierarchy = "received_at"
    list_select_related = ["order"]
    exclude = ["payload", "raw_body", "headers"]
    readonly_fields = ["payload_display", "raw_body_display", "headers_display"]
    show_full_result_count = False

    @admin.display(description=_("解析内容"))
    def payload_display(self, callback):
        return _pre(json.dumps(callback.payload, ensure_ascii=False, indent=2, default=str))

    @admin.display(description=_("原始内容"))
    def raw_body_display(self, callback):
        return _pre(callback.raw_body)

    @admin.display(description=_("请求头"))
    def headers_display(self, callback):
        return _pre(json.dumps(callback.headers, ensure_ascii=False, indent=2, default=str))


@admin.register(Refund)
class RefundAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["created_at", "order", "amount", "status", "reason", "restock", "gateway", "actor", "finished_at"]
    list_filter = ["status", "gateway", "restock", "created_at"]
    search_fields = ["=order__order_no", "=out_refund_no"]
    list_select_related = ["order", "actor"]


@admin.register(DepositPayment)
class DepositPaymentAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Deposits (保证金) paid through the gateway; held in the ledger on the verified callback."""

    list_display = ["deposit_no", "distributor", "amount", "gateway", "status", "created_at", "credited_at"]
    list_filter = ["status", "gateway"]
    search_fields = ["=deposit_no"]
    list_select_related = ["distributor__user"]


@admin.register(Voucher)
class VoucherAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Vouchers by order; searching a full code finds it by its blind index."""

    list_display = ["order", "product", "sequence", "masked_code", "requires_dynamic_code", "redeemed_at", "redeemed_by", "redeemed_store"]
    list_filter = [("redeemed_at", admin.EmptyFieldListFilter), "product", "created_at"]
    search_fields = ["=order__order_no"]
    list_select_related = ["order", "product", "redeemed_by"]
    fields = ["order", "product", "sequence", "masked_code", "requires_dynamic_code", "created_at", "redeemed_at", "redeemed_by", "redeemed_store", "voided_at"]
    readonly_fields = fields

    @admin.display(description=_("券码"))
    def masked_code(self, voucher):
        return f"…{voucher.code_last4}"

    def get_search_results(self, request, queryset, search_term):
        from .services.redemption import CODE_LENGTH, _code_index, normalise_code

        if len(normalise_code(search_term)) == CODE_LENGTH:
            return queryset.filter(code_index=_code_index(search_term)), False
        return super().get_search_results(request, queryset, search_term)


@admin.register(VoucherRedemption)
class VoucherRedemptionAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["created_at", "voucher", "outcome", "actor_name", "store_label", "ip_address"]
    list_filter = ["outcome", "store_label", "created_at"]
    search_fields = ["=voucher__order__order_no", "actor_name", "store_label"]
    list_select_related = ["voucher__order"]
    date_hierarchy = "created_at"


# --- the order books (docs/adr/0020): per-order profit, the profit report, reconciliation ------
PROFIT_PERMISSION = "commissions.view_journalentry"
PROFIT_GROUPINGS = {
    "product": (_("按商品"), "product_id"),
    "day": (_("按日"), ""),
    "distributor": (_("按分销商"), "distributor_id"),
}


def _order_books_context(request, order) -> dict:
    """Every journal line of the order and its profit, for staff who may read the ledger; the
    reconciliation differences that name it, for staff who may see them."""
    context = {}
    if request.user.has_perm(PROFIT_PERMISSION):
        from commissions.book_selectors import order_books

        context["books"] = order_books(order_id=order.pk)
    if request.user.has_perm("orders.view_gatewaystatement"):
        from .models import StatementDifference

        context["statement_differences"] = list(
            StatementDifference.objects.filter(out_trade_no=order.order_no).select_related("statement")[:20]
        )
    return context


def profit_report_view(model_admin, request):
    from commissions.book_selectors import profit_report

    from .services.reconciliation import parse_day

    if not request.user.has_perm(PROFIT_PERMISSION):
        raise PermissionDenied
    grouping = request.GET.get("by", "product")
    if grouping not in PROFIT_GROUPINGS:
        grouping = "product"
    since = parse_day(request.GET.get("since", ""))
    until = parse_day(request.GET.get("until", ""))
    label, field = PROFIT_GROUPINGS[grouping]
    rows = profit_report(
        group_by="day" if grouping == "day" else "order",
        order_field=field,
        since=since and since[0],
        until=until and until[1],
    )
    if grouping == "product":
        from catalog.selectors.products import product_names

        names = product_names(row["key"] for row in rows)
        for row in rows:
            row["label"] = names.get(row["key"], f"#{row['key']}")
    else:
        for row in rows:
            row["label"] = row["key"] if row["key"] is not None else gettext("无（直接销售）")
    context = {
        **model_admin.admin_site.each_context(request),
        "title": gettext("利润报表（按账本）"),
        "opts": model_admin.model._meta,
        "rows": rows,
        "grouping": grouping,
        "groupings": [(key, value[0]) for key, value in PROFIT_GROUPINGS.items()],
        "since": request.GET.get("since", ""),
        "until": request.GET.get("until", ""),
        "total": {name: sum((row[name] for row in rows), Decimal("0.00")) for name in ("profit", "fee", "cost")},
    }
    return TemplateResponse(request, "admin/orders/profit_report.html", context)


class StatementDifferenceInline(ReadOnlyInline):
    model = StatementDifference
    fields = [
        "kind",
        "is_refund",
        "out_trade_no",
        "out_refund_no",
        "gateway_trade_no",
        "statement_amount",
        "book_amount",
        "statement_fee",
        "book_fee",
    ]
    readonly_fields = fields

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("orders.view_gatewaystatement")


class StatementUploadForm(forms.Form):
    gateway = forms.ChoiceField(
        label=_("支付方式"), choices=[("alipay", _("支付宝")), ("wechatpay", _("微信支付")), ("sandbox", _("沙箱"))]
    )
    statement_format = forms.ChoiceField(
        label=_("账单格式"), choices=[("alipay", _("支付宝业务明细")), ("wechatpay", _("微信支付交易账单"))]
    )
    bill_date = forms.DateField(label=_("账单日期"))
    file = forms.FileField(label=_("账单文件"))


@admin.register(GatewayStatement)
class GatewayStatementAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """渠道对账: each gateway's day, what matched and what did not."""

    change_list_template = "admin/orders/gatewaystatement/change_list.html"
    list_display = [
        "bill_date",
        "gateway",
        "status",
        "line_count",
        "matched_count",
        "difference_count",
        "statement_total",
        "statement_fees",
        "reconciled_at",
    ]
    list_filter = ["status", "gateway"]
    date_hierarchy = "bill_date"
    fields = list_display
    readonly_fields = list_display
    inlines = [StatementDifferenceInline]

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [path("upload/", wrap(self.upload_view), name="orders_gatewaystatement_upload")] + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        open_days = GatewayStatement.objects.filter(status=StatementStatus.DIFFERENCES).order_by("-bill_date")[:10]
        extra_context = (extra_context or {}) | {
            "open_days": list(open_days),
            "can_upload": request.user.has_perm("orders.reconcile_statements"),
        }
        return super().changelist_view(request, extra_context)

    def upload_view(self, request):
        """Reconcile a statement file finance downloaded by hand (a day the job could not fetch)."""
        from .services.reconciliation import StatementFormatError, reconcile_statement

        if not request.user.has_perm("orders.reconcile_statements"):
            raise PermissionDenied
        form = StatementUploadForm(request.POST or None, request.FILES or None)
        status = 200
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            if upload.size > 200 * 1024 * 1024:
                form.add_error("file", gettext("账单文件过大"))
            else:
                try:
                    statement = reconcile_statement(
                        gateway_code=form.cleaned_data["gateway"],
                        day=form.cleaned_data["bill_date"],
                        content=upload.read(),
                        statement_format=form.cleaned_data["statement_format"],
                        actor=request.user,
                    )
                except StatementFormatError as error:
                    form.add_error("file", gettext("账单格式不正确：%(reason)s") % {"reason": error})
                else:
                    messages.success(
                        request,
                        gettext("已对账：%(lines)s 行，%(count)s 处差异")
                        % {"lines": statement.line_count, "count": statement.difference_count},
                    )
                    return redirect("admin:orders_gatewaystatement_change", statement.pk)
        if request.method == "POST":
            status = 400
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("上传渠道账单"),
            "opts": self.model._meta,
            "form": form,
        }
        return TemplateResponse(request, "admin/orders/gatewaystatement/upload.html", context, status=status)
# The docking console (对接管理, docs/adr/0019): sites, keys, webhooks, API orders, refund requests.
from .api import admin as docking_admin  # noqa: E402,F401
