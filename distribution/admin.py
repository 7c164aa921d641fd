"""Merchant side of the network: a tree browser with subtree figures, the approval queue,
moves and status changes (through the services: locked, audited), grades and compliance words.

The tree is never edited by dragging or by the ``parent`` field: moves go through the manage
page, which calls ``move_subtree`` (ADR 0007)."""

from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import (
    DecimalField,
    F,
    IntegerField,
    Max,
    OuterRef,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from kamen.audit import diff_fields, record_audit, snapshot
from kamen.money import format_cny
from kamen.setting_checks import SettingChangeAdminMixin

from . import services
from .models import (
    Appeal,
    AppealStatus,
    BannedWord,
    CopyTemplate,
    DistributionSettings,
    Distributor,
    DistributorApplication,
    DistributorStatus,
    Grade,
    GradeProductPrice,
    GradeVolumeTier,
    Invitation,
    PromotionRule,
    ReferralLink,
    SubStore,
    SubStorePrice,
)
from .selectors import MONEY_FIELD, sold_statuses


def _subtree_of_outer():
    return Distributor.objects.filter(
        tree_id=OuterRef(OuterRef("tree_id")),
        lft__gte=OuterRef(OuterRef("lft")),
        rght__lte=OuterRef(OuterRef("rght")),
    ).values("pk")


def with_subtree_figures(queryset):
    """Team GMV, headcount and depth per row: nested-set arithmetic and two correlated
    subqueries, so a page of the browser is one query."""
    from .selectors import _order_model

    gmv = Subquery(
        _order_model().objects.filter(
            distributor_id__in=_subtree_of_outer(), status__in=sold_statuses()
        )
        .order_by()
        .annotate(group=Value(1))
        .values("group")
        .annotate(
            total=Sum(F("paid_amount") - F("refunded_amount"), output_field=MONEY_FIELD)
        )
        .values("total")[:1],
        output_field=MONEY_FIELD,
    )
    deepest = Subquery(
        Distributor.objects.filter(
            tree_id=OuterRef("tree_id"),
            lft__gte=OuterRef("lft"),
            rght__lte=OuterRef("rght"),
        )
        .order_by()
        .annotate(group=Value(1))
        .values("group")
        .annotate(deepest=Max("level"))
        .values("deepest")[:1],
        output_field=IntegerField(),
    )
    return queryset.annotate(
        team_gmv=Coalesce(
            gmv,
            Value(Decimal("0.00")),
            output_field=DecimalField(max_digits=14, decimal_places=2),
        ),
        headcount=(F("rght") - F("lft") - 1) / 2,
        team_depth=deepest - F("level"),
    )


class SegmentFilter(admin.SimpleListFilter):
    """Act on a segment computed on schedule (活跃推广型 / 躺平型 / 潜力成长型) or on the
    distributors warned for inactivity."""

    title = _("分群")
    parameter_name = "segment"

    def lookups(self, request, model_admin):
        from .services.lifecycle import SEGMENT_TAGS

        return [(tag, tag) for tag in SEGMENT_TAGS] + [("warned", _("无销售已预警"))]

    def queryset(self, request, queryset):
        if self.value() == "warned":
            return queryset.filter(
                inactivity_warned_at__isnull=False, status=DistributorStatus.ACTIVE
            )
        if self.value():
            return queryset.filter(tags__contains=[self.value()])
        return queryset


class DistributorForm(forms.ModelForm):
    class Meta:
        model = Distributor
        fields = ["user", "grade", "region", "tags"]


@admin.register(Distributor)
class DistributorAdmin(admin.ModelAdmin):
    form = DistributorForm
    list_display = [
        "tree_name",
        "invite_code",
        "grade",
        "status",
        "headcount",
        "team_depth",
        "team_gmv_display",
        "phone",
        "joined_at",
        "manage_link",
    ]
    list_filter = ["status", "grade", SegmentFilter, "deposit_status"]
    search_fields = [
        "user__username",
        "user__display_name",
        "user__phone",
        "invite_code",
        "region",
    ]
    list_select_related = ["user", "grade"]
    ordering = ["tree_id", "lft"]
    autocomplete_fields = ["user"]
    list_per_page = 50
    readonly_fields = [
        "parent",
        "invite_code",
        "status",
        "deposit_status",
        "deposit_amount",
        "applied_at",
        "joined_at",
        "level",
    ]

    def get_queryset(self, request):
        return with_subtree_figures(super().get_queryset(request))

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["user", "grade", "region"]
        return [
            "user",
            "parent",
            "grade",
            "invite_code",
            "status",
            "region",
            "tags",
            "deposit_status",
            "deposit_amount",
            "applied_at",
            "joined_at",
            "level",
        ]

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields + (["user"] if obj is not None else [])

    @admin.display(description=_("分销商"), ordering="lft")
    def tree_name(self, obj):
        return format_html(
            '<span style="padding-left:{}em">{}{}</span>',
            obj.level * 1.2,
            "└ " if obj.level else "",
            obj.user,
        )

    @admin.display(description=_("团队人数"), ordering="headcount")
    def headcount(self, obj):
        return obj.headcount

    @admin.display(description=_("团队层数"))
    def team_depth(self, obj):
        return obj.team_depth

    @admin.display(description=_("团队业绩"), ordering="team_gmv")
    def team_gmv_display(self, obj):
        return format_cny(obj.team_gmv)

    @admin.display(description=_("手机号"))
    def phone(self, obj):
        return obj.user.phone

    @admin.display(description=_("操作"))
    def manage_link(self, obj):
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:distribution_distributor_manage", args=[obj.pk]),
            gettext("移动 / 状态"),
        )

    def save_model(self, request, obj, form, change):
        if not change:
            created = services.create_root_distributor(
                user=form.cleaned_data["user"],
                grade=form.cleaned_data["grade"],
                actor=request.user,
                region=form.cleaned_data.get("region", ""),
                request=request,
            )
            obj.pk = created.pk
            return
        before = snapshot(
            Distributor.objects.get(pk=obj.pk), ["grade", "region", "tags"]
        )
        Distributor.objects.filter(pk=obj.pk).update(
            grade=obj.grade, region=obj.region, tags=obj.tags
        )
        record_audit(
            actor=request.user,
            action="distribution.distributor.change",
            target=obj,
            request=request,
            changes=diff_fields(
                before=before, after=snapshot(obj, ["grade", "region", "tags"])
            ),
        )

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        return [
            path(
                "<int:pk>/manage/",
                self.admin_site.admin_view(self.manage_view),
                name="distribution_distributor_manage",
            ),
        ] + super().get_urls()

    def manage_view(self, request, pk):
        """Move a subtree or change a status, with a reason; the services check and audit."""
        distributor = get_object_or_404(
            with_subtree_figures(
                Distributor.objects.select_related("user", "grade", "parent__user")
            ),
            pk=pk,
        )
        if not self.has_view_permission(request, distributor):
            raise PermissionDenied
        if request.method == "POST":
            action = request.POST.get("action")
            reason = request.POST.get("reason", "")
            try:
                if action == "move":
                    code = services.codes.normalize_code(
                        request.POST.get("new_parent_code", "")
                    )
                    new_parent = None
                    if code:
                        new_parent = Distributor.objects.filter(
                            invite_code=code
                        ).first()
                        if new_parent is None:
                            raise ValidationError(
                                gettext("邀请码“%(code)s”对应的分销商不存在")
                                % {"code": code}
                            )
                    services.move_subtree(
                        distributor=distributor,
                        new_parent=new_parent,
                        actor=request.user,
                        reason=reason,
                        request=request,
                    )
                    messages.success(request, gettext("已移动（含下级）"))
                elif action == "approve":
                    services.approve_distributor(
                        distributor=distributor, actor=request.user, request=request
                    )
                    messages.success(request, gettext("已通过审核"))
                elif action == "reject":
                    services.reject_distributor(
                        distributor=distributor,
                        actor=request.user,
                        reason=reason,
                        request=request,
                    )
                    messages.success(request, gettext("已拒绝申请"))
                elif action in (
                    DistributorStatus.FROZEN,
                    DistributorStatus.ACTIVE,
                    DistributorStatus.CLEARED,
                ):
                    services.change_distributor_status(
                        distributor=distributor,
                        new_status=action,
                        actor=request.user,
                        reason=reason,
                        request=request,
                    )
                    messages.success(request, gettext("状态已更新"))
                return redirect("admin:distribution_distributor_manage", pk=pk)
            except ValidationError as error:
                for message in error.messages:
                    messages.error(request, message)
            except PermissionDenied as error:
                messages.error(request, str(error) or gettext("您没有执行此操作的权限"))
        context = self.admin_site.each_context(request) | {
            "title": gettext("管理分销商：%(name)s") % {"name": distributor.user},
            "distributor": distributor,
            "admission_problems": services.admission_problems(distributor)
            if distributor.status == DistributorStatus.APPLIED
            else [],
            "ancestors": list(
                distributor.get_ancestors(ascending=True).select_related("user")
            ),
            "history": distributor.status_changes.select_related("actor").order_by(
                "-created_at"
            )[:20],
            "opts": self.model._meta,
        }
        return TemplateResponse(
            request, "admin/distribution/distributor/manage.html", context
        )


@admin.register(DistributorApplication)
class ApplicationAdmin(admin.ModelAdmin):
    """The approval queue: applicants waiting, oldest first."""

    list_display = [
        "user",
        "parent",
        "grade",
        "deposit_amount",
        "applied_at",
        "review_link",
    ]
    list_select_related = ["user", "grade", "parent__user"]
    search_fields = [
        "user__username",
        "user__display_name",
        "user__phone",
        "invite_code",
    ]
    ordering = ["applied_at"]
    actions = ["approve_selected"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(status=DistributorStatus.APPLIED)

    @admin.display(description=_("审核"))
    def review_link(self, obj):
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:distribution_distributor_manage", args=[obj.pk]),
            gettext("审核"),
        )

    @admin.action(description=_("通过所选申请（保证金与首单条件已满足的）"))
    def approve_selected(self, request, queryset):
        approved = 0
        for applicant in queryset:
            try:
                services.approve_distributor(
                    distributor=applicant, actor=request.user, request=request
                )
                approved += 1
            except (ValidationError, PermissionDenied) as error:
                messages.warning(
                    request,
                    f"{applicant.user}: {' '.join(getattr(error, 'messages', [str(error)]))}",
                )
        messages.success(
            request, gettext("已通过 %(count)s 个申请") % {"count": approved}
        )

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class GradeProductPriceInline(admin.TabularInline):
    model = GradeProductPrice
    extra = 0
    autocomplete_fields = ["product"]


class GradeVolumeTierInline(admin.TabularInline):
    model = GradeVolumeTier
    extra = 0
    autocomplete_fields = ["product"]


@admin.register(Grade)
class GradeAdmin(SettingChangeAdminMixin, admin.ModelAdmin):
    """Grades, their prices and volume tiers (the inlines) and whether they may open a
    sub-store: the commission guard reads all of them, so a save that would let the rules
    breach a cap is refused with the rule and the setting that clash."""

    list_display = [
        "name",
        "rank",
        "wholesale_discount_bp",
        "commission_level1_bp",
        "commission_level2_bp",
        "commission_level3_bp",
        "may_recruit",
        "may_open_sub_store",
        "admission_mode",
        "deposit_amount",
        "is_default",
    ]
    inlines = [GradeProductPriceInline, GradeVolumeTierInline]
    fieldsets = [
        (None, {"fields": ["name", "rank", "is_default"]}),
        (_("价格"), {"fields": ["wholesale_discount_bp"]}),
        (
            _("佣金（供佣金模块使用，最多三级）"),
            {
                "fields": [
                    "commission_level1_bp",
                    "commission_level2_bp",
                    "commission_level3_bp",
                ]
            },
        ),
        (
            _("权限"),
            {
                "fields": [
                    "may_recruit",
                    "may_see_floor_price",
                    "may_buy_stock",
                    "stock_tiers_count_month",
                    "may_open_sub_store",
                    "withdrawal_min_amount",
                    "withdrawal_daily_max_amount",
                ]
            },
        ),
        (
            _("加入条件"),
            {
                "fields": ["admission_mode", "deposit_amount", "first_order_amount"],
                "description": _("保证金可退还，不是等级的价格，也不会分给任何上级。"),
            },
        ),
    ]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        record_audit(
            actor=request.user,
            action="distribution.grade.change"
            if change
            else "distribution.grade.create",
            target=obj,
            request=request,
            changes={
                name: [None, str(form.cleaned_data.get(name))]
                for name in form.changed_data
            },
        )

    def has_delete_permission(self, request, obj=None):
        return obj is None or not obj.distributors.exists()

    def guard_setting(self, request, object_id) -> str:
        # get_object: an id that is not a number names no grade (a 500 before, issue 14 item 7).
        grade = self.get_object(request, object_id) if object_id else None
        name = grade.name if grade is not None else request.POST.get("name", "")
        return gettext("等级“%(name)s”的设置") % {"name": name}


class DistributionSettingsForm(forms.ModelForm):
    class Meta:
        model = DistributionSettings
        fields = ["commission_depth", "inactivity_days", "staff_may_join"]

    def clean_commission_depth(self):
        depth = self.cleaned_data["commission_depth"]
        if not 1 <= depth <= 3:
            raise ValidationError(gettext("佣金层级只能是 1–3 级（法律上限为 3 级）"))
        return depth


@admin.register(DistributionSettings)
class DistributionSettingsAdmin(admin.ModelAdmin):
    form = DistributionSettingsForm
    list_display = ["__str__", "commission_depth", "inactivity_days"]

    def save_model(self, request, obj, form, change):
        services.set_commission_depth(
            depth=form.cleaned_data["commission_depth"],
            actor=request.user,
            request=request,
        )
        DistributionSettings.objects.filter(pk=1).update(
            inactivity_days=form.cleaned_data["inactivity_days"],
            staff_may_join=form.cleaned_data["staff_may_join"],
        )

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(BannedWord)
class BannedWordAdmin(admin.ModelAdmin):
    list_display = ["word", "note", "is_active"]
    list_editable = ["is_active"]
    search_fields = ["word"]


@admin.register(CopyTemplate)
class CopyTemplateAdmin(admin.ModelAdmin):
    list_display = ["title", "channel", "is_active", "sort_order"]
    list_filter = ["channel", "is_active"]

    def save_model(self, request, obj, form, change):
        from .services.promotion import banned_words_in

        offending = banned_words_in(obj.body)
        if offending:
            messages.warning(
                request,
                gettext("模板含有违规用语：%(words)s")
                % {"words": "、".join(offending)},
            )
        super().save_model(request, obj, form, change)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class SubStorePriceInline(admin.TabularInline):
    model = SubStorePrice
    extra = 0
    readonly_fields = ["product", "price", "floor_price", "ceiling_price", "updated_at"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(SubStore)
class SubStoreAdmin(ReadOnlyAdmin):
    list_display = ["name", "slug", "distributor", "is_open", "created_at"]
    search_fields = [
        "name",
        "slug",
        "distributor__invite_code",
        "distributor__user__username",
    ]
    inlines = [SubStorePriceInline]


@admin.register(ReferralLink)
class ReferralLinkAdmin(ReadOnlyAdmin):
    list_display = [
        "code",
        "distributor",
        "channel",
        "clicks",
        "orders",
        "is_active",
        "created_at",
    ]
    list_filter = ["channel"]
    search_fields = ["code", "distributor__invite_code", "distributor__user__username"]


@admin.register(Invitation)
class InvitationAdmin(ReadOnlyAdmin):
    list_display = [
        "code",
        "inviter",
        "grade",
        "uses",
        "max_uses",
        "expires_at",
        "is_active",
    ]
    search_fields = ["code", "inviter__invite_code"]


class PromotionRuleForm(forms.ModelForm):
    class Meta:
        model = PromotionRule
        fields = [
            "from_grade",
            "to_grade",
            "period_days",
            "min_own_sales",
            "min_team_sales",
            "min_direct_recruits",
            "is_active",
        ]

    def clean(self):
        cleaned = super().clean()
        low, high = cleaned.get("from_grade"), cleaned.get("to_grade")
        if low and high and high.rank <= low.rank:
            raise ValidationError({"to_grade": [gettext("升级只能升到级别更高的等级")]})
        return cleaned


@admin.register(PromotionRule)
class PromotionRuleAdmin(admin.ModelAdmin):
    form = PromotionRuleForm
    list_display = [
        "__str__",
        "period_days",
        "min_own_sales",
        "min_team_sales",
        "min_direct_recruits",
        "is_active",
    ]
    list_filter = ["is_active"]


@admin.register(Appeal)
class AppealAdmin(admin.ModelAdmin):
    """The appeal queue: pending first; decisions go through the service (audited, and an
    accepted appeal unfreezes the distributor)."""

    list_display = [
        "distributor",
        "reason",
        "status",
        "created_at",
        "decided_by",
        "decided_at",
    ]
    list_filter = ["status"]
    search_fields = [
        "distributor__invite_code",
        "distributor__user__username",
        "distributor__user__phone",
    ]
    list_select_related = ["distributor__user", "decided_by"]
    actions = ["accept_selected", "reject_selected"]
    readonly_fields = [
        "distributor",
        "reason",
        "status",
        "decision_note",
        "decided_by",
        "created_at",
        "decided_at",
    ]

    def _decide(self, request, queryset, accept: bool):
        from .services.lifecycle import decide_appeal

        decided = 0
        for item in queryset.filter(status=AppealStatus.PENDING):
            try:
                decide_appeal(
                    appeal=item,
                    accept=accept,
                    actor=request.user,
                    note=gettext("后台处理"),
                    request=request,
                )
                decided += 1
            except (ValidationError, PermissionDenied) as error:
                messages.warning(
                    request,
                    f"{item}: {' '.join(getattr(error, 'messages', [str(error)]))}",
                )
        messages.success(
            request, gettext("已处理 %(count)s 条申诉") % {"count": decided}
        )

    @admin.action(description=_("通过所选申诉（解冻）"))
    def accept_selected(self, request, queryset):
        self._decide(request, queryset, True)

    @admin.action(description=_("驳回所选申诉"))
    def reject_selected(self, request, queryset):
        self._decide(request, queryset, False)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
