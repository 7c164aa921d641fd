"""Merchant console for commissions: rules (validated by the compliance guard, with a split
preview), settlement runs, withdrawal review, read-only ledger views, CSV export and a report
summed from the ledger. Every write goes through ``commissions.services``."""

import csv
import secrets
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from kamen import parsing

from . import selectors, services
from .models import (
    Account,
    AutoApprovalPolicy,
    Campaign,
    CapEvent,
    Commission,
    CommissionPolicy,
    CommissionRule,
    CommissionTier,
    DepositRefund,
    DepositRefundStatus,
    JournalEntry,
    JournalTransaction,
    PayoutAccount,
    ProductBonus,
    SettlementRun,
    TeamBonusRule,
    WalletHold,
    Withdrawal,
    WithdrawalStatus,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Ledger history: looked at, never edited here (the database refuses it anyway)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class GuardedForm(forms.ModelForm):
    """Runs the compliance guard on the rule set as it would be, so a refusal shows its reason
    on the form and nothing is saved."""

    def _post_clean(self):
        super()._post_clean()  # copies the cleaned data onto the instance
        if not self.errors:
            for problem in services.check_without_saving(self.instance):
                self.add_error(None, problem)


class GuardedAdmin(admin.ModelAdmin):
    save_service = None

    def save_model(self, request, obj, form, change):
        type(self).save_service(
            **{self.service_kwarg: obj}, actor=request.user, request=request
        )


class CommissionRuleForm(GuardedForm):
    class Meta:
        model = CommissionRule
        fields = [
            "grade",
            "product",
            "level",
            "trigger",
            "mode",
            "rate_bp",
            "fixed_amount",
            "is_active",
        ]


class PreviewForm(forms.Form):
    distributor = parsing.IntegerField(label=_("分销商 ID"))
    product = parsing.IntegerField(label=_("商品 ID"))
    amount = parsing.DecimalField(
        label=_("订单金额"),
        max_digits=14,
        decimal_places=2,
        min_value=Decimal("0.01"),
        initial=Decimal("100.00"),
    )


@admin.register(CommissionRule)
class CommissionRuleAdmin(GuardedAdmin):
    form = CommissionRuleForm
    save_service = staticmethod(services.save_commission_rule)
    service_kwarg = "rule"
    list_display = [
        "__str__",
        "grade",
        "product",
        "level",
        "mode",
        "rate_bp",
        "fixed_amount",
        "is_active",
    ]
    list_filter = ["level", "mode", "is_active", "grade"]
    autocomplete_fields = ["product"]
    change_list_template = "admin/commissions/commissionrule/change_list.html"

    def get_urls(self):
        return [
            path(
                "preview/",
                self.admin_site.admin_view(self.preview_view),
                name="commissions_commissionrule_preview",
            )
        ] + super().get_urls()

    def preview_view(self, request):
        from catalog.models import Product
        from distribution.models import Distributor

        if not self.has_view_permission(request):
            raise PermissionDenied
        form = PreviewForm(request.GET or None)
        preview = None
        if form.is_valid():
            distributor = (
                Distributor.objects.select_related("grade")
                .filter(pk=form.cleaned_data["distributor"])
                .first()
            )
            product = Product.objects.filter(pk=form.cleaned_data["product"]).first()
            if distributor is None or product is None:
                form.add_error(None, gettext("找不到该分销商或商品"))
            else:
                preview = selectors.preview_split(
                    distributor=distributor,
                    product=product,
                    amount=form.cleaned_data["amount"],
                )
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("佣金预览"),
            "form": form,
            "preview": preview,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/commissions/preview.html", context)


class ProductBonusForm(GuardedForm):
    class Meta:
        model = ProductBonus
        fields = ["product", "bonus_bp", "is_active"]


@admin.register(ProductBonus)
class ProductBonusAdmin(GuardedAdmin):
    form = ProductBonusForm
    save_service = staticmethod(services.save_product_bonus)
    service_kwarg = "bonus"
    list_display = ["product", "bonus_bp", "is_active"]
    autocomplete_fields = ["product"]


class CampaignForm(GuardedForm):
    class Meta:
        model = Campaign
        fields = [
            "name",
            "product",
            "multiplier_bp",
            "starts_at",
            "ends_at",
            "is_active",
        ]


@admin.register(Campaign)
class CampaignAdmin(GuardedAdmin):
    form = CampaignForm
    save_service = staticmethod(services.save_campaign)
    service_kwarg = "campaign"
    list_display = [
        "name",
        "product",
        "multiplier_bp",
        "starts_at",
        "ends_at",
        "is_active",
    ]
    autocomplete_fields = ["product"]


class TeamBonusRuleForm(forms.ModelForm):
    """Refuses, with the reason, a bonus above the merchant's share cap at its threshold."""

    class Meta:
        model = TeamBonusRule
        fields = ["threshold", "mode", "fixed_amount", "rate_bp", "is_active"]

    def _post_clean(self):
        super()._post_clean()
        if not self.errors:
            for problem in services.team_bonus_rule_problems(self.instance):
                self.add_error(None, problem)


@admin.register(TeamBonusRule)
class TeamBonusRuleAdmin(GuardedAdmin):
    """团队业绩奖励: thresholds of monthly team sales and the leader's reward; paid on the 1st
    for the month just ended (beat: ``commissions.tasks.team_bonus_task``)."""

    form = TeamBonusRuleForm
    save_service = staticmethod(services.save_team_bonus_rule)
    service_kwarg = "rule"
    list_display = ["threshold", "mode", "fixed_amount", "rate_bp", "is_active"]


class PolicyForm(GuardedForm):
    class Meta:
        model = CommissionPolicy
        exclude = []


@admin.register(CommissionPolicy)
class CommissionPolicyAdmin(GuardedAdmin):
    form = PolicyForm
    save_service = staticmethod(services.save_policy)
    service_kwarg = "policy"

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        # Check before get_policy(): it may create the row, which a refused user must not do.
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        policy = services.get_policy()
        return HttpResponseRedirect(
            reverse("admin:commissions_commissionpolicy_change", args=[policy.pk])
        )


@admin.register(Commission)
class CommissionAdmin(ReadOnlyAdmin):
    list_display = [
        "order",
        "beneficiary",
        "kind",
        "level",
        "rule_description",
        "rate_bp",
        "amount",
        "reversed_amount",
        "status",
        "available_at",
    ]
    list_filter = ["status", "kind", "level"]
    search_fields = ["order__order_no"]
    list_select_related = ["order", "beneficiary__user"]
    actions = ["export_csv"]
    change_list_template = "admin/commissions/commission/change_list.html"

    def get_urls(self):
        return [
            path(
                "report/",
                self.admin_site.admin_view(self.report_view),
                name="commissions_commission_report",
            )
        ] + super().get_urls()

    def report_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("佣金报表（按账本）"),
            "rows": selectors.commission_report(),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/commissions/report.html", context)

    @admin.action(description=_("导出所选佣金为 CSV"))
    def export_csv(self, request, queryset):
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="commissions.csv"'
        response.write("\ufeff")
        writer = csv.writer(response)
        writer.writerow(
            [
                "order_no",
                "beneficiary_id",
                "beneficiary",
                "kind",
                "level",
                "rule",
                "rate_bp",
                "base",
                "amount",
                "reversed",
                "status",
                "created_at",
            ]
        )
        for c in selectors.commissions_for_export().filter(
            pk__in=queryset.values("pk")
        ):
            writer.writerow(
                [
                    c.order.order_no if c.order_id else f"team:{c.period:%Y-%m}",
                    c.beneficiary_id,
                    str(c.beneficiary.user),
                    c.kind,
                    c.level,
                    c.rule_description,
                    c.rate_bp,
                    c.base_amount,
                    c.amount,
                    c.reversed_amount,
                    c.status,
                    c.created_at.isoformat(),
                ]
            )
        return response


@admin.register(CapEvent)
class CapEventAdmin(ReadOnlyAdmin):
    list_display = ["order", "computed_amount", "capped_amount", "reason", "created_at"]


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "kind", "distributor", "balance"]
    list_filter = ["kind"]


class EntryInline(admin.TabularInline):
    model = JournalEntry
    extra = 0
    fields = ["account", "side", "amount", "commission"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(JournalTransaction)
class JournalTransactionAdmin(ReadOnlyAdmin):
    list_display = ["reference", "kind", "memo", "order", "created_at"]
    list_filter = ["kind"]
    search_fields = ["reference", "memo"]
    inlines = [EntryInline]


@admin.register(JournalEntry)
class JournalEntryAdmin(ReadOnlyAdmin):
    list_display = [
        "transaction",
        "account",
        "side",
        "amount",
        "commission",
        "created_at",
    ]
    list_filter = ["side", "account__kind"]
    list_select_related = ["transaction", "account"]


@admin.register(SettlementRun)
class SettlementRunAdmin(ReadOnlyAdmin):
    list_display = [
        "key",
        "cycle",
        "cutoff",
        "commission_count",
        "total_amount",
        "started_at",
        "finished_at",
    ]
    change_list_template = "admin/commissions/settlementrun/change_list.html"

    def get_urls(self):
        return [
            path(
                "run/",
                self.admin_site.admin_view(self.run_view),
                name="commissions_settlementrun_run",
            )
        ] + super().get_urls()

    def run_view(self, request):
        """立即结算: GET shows what is due and asks to confirm; the POST carries that page's
        one-time token, so a double submit finds the first run, and a run with nothing due is
        not recorded ("nothing due")."""
        if not request.user.has_perm("commissions.add_settlementrun"):
            raise PermissionDenied
        changelist = reverse("admin:commissions_settlementrun_changelist")
        if request.method != "POST":
            context = {
                **self.admin_site.each_context(request),
                "title": gettext("确认立即结算"),
                "due": selectors.settlement_due(),
                "token": secrets.token_urlsafe(16),
                "opts": self.model._meta,
                "changelist_url": changelist,
            }
            return TemplateResponse(request, "admin/commissions/settlementrun/confirm_run.html", context)
        token = request.POST.get("token", "").strip()[:24]
        if not token:
            messages.error(request, gettext("请从确认页面提交结算"))
            return HttpResponseRedirect(reverse("admin:commissions_settlementrun_run"))
        policy = services.get_policy()
        run = services.run_settlement(cycle=policy.settlement_cycle, key=f"manual:{token}")
        if run.pk is None:
            messages.info(request, gettext("没有到期可结算的佣金，未生成结算批次"))
        else:
            messages.success(
                request,
                gettext("结算完成：%(count)s 笔，¥%(total)s")
                % {"count": run.commission_count, "total": run.total_amount},
            )
        return HttpResponseRedirect(changelist)


class WithdrawalActionForm(admin.helpers.ActionForm):
    reason = forms.CharField(label=_("驳回原因"), required=False, max_length=200)


@admin.register(Withdrawal)
class WithdrawalAdmin(ReadOnlyAdmin):
    list_display = [
        "payout_no",
        "distributor",
        "payout_account",
        "amount",
        "fee",
        "tax",
        "net_amount",
        "status",
        "auto_decision",
        "created_at",
        "tax_certificate",
    ]
    list_filter = ["status", "auto_decision"]
    search_fields = ["payout_no"]
    list_select_related = ["distributor__user", "payout_account"]
    action_form = WithdrawalActionForm
    actions = ["approve", "reject"]
    change_list_template = "admin/commissions/withdrawal/change_list.html"

    def get_urls(self):
        return [
            path(
                "tax-certificate/<int:distributor_id>/<int:year>/<int:month>/",
                self.admin_site.admin_view(self.tax_certificate_view),
                name="commissions_withdrawal_tax_certificate",
            ),
            path(
                "withholding-export/",
                self.admin_site.admin_view(self.withholding_export_view),
                name="commissions_withdrawal_withholding_export",
            ),
        ] + super().get_urls()

    @admin.display(description=_("个税明细"))
    def tax_certificate(self, withdrawal):
        local = timezone.localtime(withdrawal.created_at)
        url = reverse(
            "admin:commissions_withdrawal_tax_certificate",
            args=[withdrawal.distributor_id, local.year, local.month],
        )
        return format_html('<a href="{}">{}</a>', url, gettext("打印"))

    def tax_certificate_view(self, request, distributor_id, year, month):
        """A distributor's monthly tax statement, the same printable page as in the portal."""
        from distribution.models import Distributor

        from .views import month_or_404

        if not self.has_view_permission(request):
            raise PermissionDenied
        distributor = Distributor.objects.filter(pk=distributor_id).first()
        if distributor is None:
            raise Http404
        certificate = selectors.tax_certificate(
            distributor=distributor, month=month_or_404(year, month)
        )
        if certificate is None:
            raise Http404
        return TemplateResponse(
            request, "commissions/tax_certificate.html", {"certificate": certificate}
        )

    def withholding_export_view(self, request):
        """GET without ``month``: the form and the month's lines (masked); with ``month``:
        the CSV for filing, with names and ID numbers (audited)."""
        from .services.tax_filing import export_month_withholding, parse_month

        if not request.user.has_perm("commissions.export_withholding"):
            raise PermissionDenied
        raw = request.GET.get("month", "")
        error, month = "", None
        if raw:
            try:
                month = parse_month(raw)
            except ValidationError as problem:
                error = " ".join(problem.messages)
        if month is not None:
            body = export_month_withholding(month=month, actor=request.user, request=request)
            response = HttpResponse("\ufeff" + body, content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = (
                f'attachment; filename="withholding-{month:%Y-%m}.csv"'
            )
            return response
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("个税扣缴明细导出"),
            "opts": self.model._meta,
            "error": error,
            "month": raw,
        }
        return TemplateResponse(
            request,
            "admin/commissions/withdrawal/withholding_export.html",
            context,
            status=400 if error else 200,
        )

    def get_queryset(self, request):
        return super().get_queryset(request).order_by("status", "created_at")

    @admin.action(description=_("审核通过并打款"), permissions=["review"])
    def approve(self, request, queryset):
        done = 0
        for withdrawal in queryset.filter(status=WithdrawalStatus.REQUESTED):
            try:
                services.approve_withdrawal(
                    withdrawal=withdrawal, actor=request.user, request=request
                )
            except ValidationError as error:  # e.g. four eyes: the reviewer's own withdrawal
                messages.error(request, f"{withdrawal.payout_no}: {' '.join(error.messages)}")
                continue
            done += 1
        messages.success(request, gettext("已通过 %(count)s 笔提现") % {"count": done})

    @admin.action(description=_("驳回（资金退回余额）"), permissions=["review"])
    def reject(self, request, queryset):
        reason = request.POST.get("reason", "")
        try:
            count = 0
            for withdrawal in queryset.filter(status=WithdrawalStatus.REQUESTED):
                services.reject_withdrawal(
                    withdrawal=withdrawal,
                    actor=request.user,
                    reason=reason,
                    request=request,
                )
                count += 1
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
            return
        messages.success(request, gettext("已驳回 %(count)s 笔提现") % {"count": count})

    def has_review_permission(self, request):
        return request.user.has_perm("commissions.review_withdrawal")


@admin.register(DepositRefund)
class DepositRefundAdmin(ReadOnlyAdmin):
    """Deposit refunds (保证金退还) asked for by distributors leaving the network; finance
    approves (the distributor leaves, a clawback debt is covered first when the rule says so,
    the rest is paid out as a withdrawal) or rejects with a reason."""

    list_display = [
        "created_at",
        "distributor",
        "amount",
        "offset_amount",
        "refund_amount",
        "status",
        "withdrawal",
        "reviewed_by",
        "reviewed_at",
        "reason",
    ]
    list_filter = ["status"]
    list_select_related = ["distributor__user", "withdrawal", "reviewed_by"]
    action_form = WithdrawalActionForm
    actions = ["approve", "reject"]

    @admin.action(description=_("通过（退出网络，先抵扣欠款，余额打款）"), permissions=["review"])
    def approve(self, request, queryset):
        done = 0
        for refund in queryset.filter(status=DepositRefundStatus.REQUESTED):
            try:
                services.approve_deposit_refund(refund=refund, actor=request.user, request=request)
            except (ValidationError, PermissionDenied) as error:  # e.g. four eyes
                messages.error(request, f"{refund.distributor}: {' '.join(getattr(error, 'messages', [str(error)]))}")
                continue
            done += 1
        messages.success(request, gettext("已通过 %(count)s 笔保证金退还") % {"count": done})

    @admin.action(description=_("驳回保证金退还"), permissions=["review"])
    def reject(self, request, queryset):
        done = 0
        for refund in queryset.filter(status=DepositRefundStatus.REQUESTED):
            try:
                services.reject_deposit_refund(
                    refund=refund, actor=request.user, reason=request.POST.get("reason", ""), request=request
                )
            except (ValidationError, PermissionDenied) as error:
                messages.error(request, f"{refund.distributor}: {' '.join(getattr(error, 'messages', [str(error)]))}")
                continue
            done += 1
        messages.success(request, gettext("已驳回 %(count)s 笔保证金退还") % {"count": done})

    def has_review_permission(self, request):
        return request.user.has_perm("commissions.review_deposit_refund")


@admin.register(PayoutAccount)
class PayoutAccountAdmin(ReadOnlyAdmin):
    list_display = [
        "distributor",
        "method",
        "holder_name",
        "account_mask",
        "is_active",
        "created_at",
    ]
    fields = [
        "distributor",
        "method",
        "holder_name",
        "bank_name",
        "account_mask",
        "is_active",
        "created_at",
    ]


@admin.register(WalletHold)
class WalletHoldAdmin(ReadOnlyAdmin):
    list_display = [
        "distributor",
        "reason",
        "frozen_pending",
        "frozen_available",
        "is_active",
        "created_at",
        "released_at",
    ]
    list_filter = ["is_active"]
    actions = ["release"]

    @admin.action(description=_("解除冻结"), permissions=["freeze"])
    def release(self, request, queryset):
        for hold in queryset.filter(is_active=True).select_related("distributor"):
            try:
                services.release_commissions(
                    distributor=hold.distributor, actor=request.user, request=request
                )
            except ValidationError as error:  # four eyes: the reviewer's own hold
                messages.error(request, f"{hold.distributor}: {' '.join(error.messages)}")

    def has_freeze_permission(self, request):
        return request.user.has_perm("commissions.freeze_commissions")


class TiersForm(forms.Form):
    grade = forms.ModelChoiceField(
        label=_("等级"),
        queryset=None,
        required=False,
        empty_label=_("全部等级（通用）"),
    )
    bands = forms.CharField(
        label=_("阶梯（每行：下限,上限,比例基点；最后一档上限留空）"),
        widget=forms.Textarea(attrs={"rows": 6}),
        initial="0,100000,800\n100000,500000,1000\n500000,,1500",
    )

    def __init__(self, *args, **kwargs):
        from distribution.models import Grade

        super().__init__(*args, **kwargs)
        self.fields["grade"].queryset = Grade.objects.all()

    def parsed_bands(self) -> list[tuple]:
        bands = []
        for line in self.cleaned_data["bands"].splitlines():
            if line.strip():
                parts = [part.strip() for part in line.split(",")]
                if len(parts) != 3:
                    raise ValidationError(gettext("每行需要三项：下限,上限,比例"))
                bands.append((parts[0], parts[1] or None, parts[2]))
        return bands


@admin.register(CommissionTier)
class CommissionTierAdmin(ReadOnlyAdmin):
    list_display = ["grade", "lower_bound", "upper_bound", "rate_bp"]
    list_filter = ["grade"]
    change_list_template = "admin/commissions/commissiontier/change_list.html"

    def get_urls(self):
        return [
            path(
                "edit/",
                self.admin_site.admin_view(self.edit_view),
                name="commissions_commissiontier_edit",
            )
        ] + super().get_urls()

    def edit_view(self, request):
        if not request.user.has_perm("commissions.change_commissionrule"):
            raise PermissionDenied
        form = TiersForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                services.save_commission_tiers(
                    grade=form.cleaned_data["grade"],
                    bands=form.parsed_bands(),
                    actor=request.user,
                    request=request,
                )
            except ValidationError as error:
                form.add_error(None, error.messages)
            else:
                messages.success(request, gettext("阶梯佣金已保存"))
                return HttpResponseRedirect(
                    reverse("admin:commissions_commissiontier_changelist")
                )
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("设置阶梯佣金"),
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/commissions/tiers_form.html", context)


class AutoApprovalPolicyForm(forms.ModelForm):
    class Meta:
        model = AutoApprovalPolicy
        fields = [
            "is_enabled",
            "max_amount",
            "min_verified_days",
            "require_no_open_risk_case",
            "require_no_negative_balance",
            "daily_total_max",
        ]

    def clean(self):
        data = super().clean()
        if not self.errors:
            try:
                services.clean_auto_approval_policy(**data)
            except ValidationError as error:
                for field, problems in error.message_dict.items():
                    for problem in problems:
                        self.add_error(field if field in self.fields else None, problem)
        return data

    def _post_clean(self):
        # The service says what is wrong in words (not "constraint violated"); skip the
        # model's own constraint check when the form already has errors.
        if not self.errors:
            super()._post_clean()


@admin.register(AutoApprovalPolicy)
class AutoApprovalPolicyAdmin(admin.ModelAdmin):
    """提现自动审核规则: finance sets them here; saved (validated and audited) by the service."""

    form = AutoApprovalPolicyForm

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        services.save_auto_approval_policy(actor=request.user, request=request, **form.cleaned_data)

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        policy = services.get_auto_approval_policy()
        return HttpResponseRedirect(
            reverse("admin:commissions_autoapprovalpolicy_change", args=[policy.pk])
        )
