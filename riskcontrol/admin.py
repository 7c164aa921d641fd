"""Risk staff's console: rules, events (CSV), the review queue, the blacklist (CSV in and out)
and real-name records (masks only). Every write goes through a service that audits it."""

import csv
from datetime import datetime

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from kamen import parsing
from kamen.audit import diff_fields, record_audit, snapshot

from .models import (
    BlacklistEntry,
    RealNameVerification,
    RiskEvent,
    RiskRule,
)
from .services.blacklist import (
    _csv_safe,
    add_to_blacklist,
    export_blacklist_csv,
    import_blacklist_csv,
    remove_from_blacklist,
)

MAX_UPLOAD_BYTES = 2 * 1024 * 1024


@admin.register(RiskRule)
class RiskRuleAdmin(admin.ModelAdmin):
    list_display = [
        "code",
        "is_enabled",
        "threshold",
        "window_minutes",
        "action",
        "updated_at",
    ]
    list_editable = ["is_enabled", "threshold", "window_minutes", "action"]
    fields = ["code", "is_enabled", "threshold", "window_minutes", "action", "note"]
    readonly_fields = ["code"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        before = RiskRule.objects.filter(pk=obj.pk).first()
        fields = ["is_enabled", "threshold", "window_minutes", "action", "note"]
        super().save_model(request, obj, form, change)
        record_audit(
            actor=request.user,
            action="riskcontrol.rule_changed",
            target=obj,
            changes=diff_fields(
                before=snapshot(before, fields) if before else {},
                after=snapshot(obj, fields),
            ),
            request=request,
        )


def _events_csv(queryset) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="risk-events-{timezone.localdate():%Y%m%d}.csv"'
    )
    response.write("\ufeff")
    writer = csv.writer(response)
    writer.writerow(
        [
            "id",
            "created_at",
            "rule",
            "action",
            "order_no",
            "distributor_id",
            "matched_on",
            "explanation",
            "outcome",
        ]
    )
    for event in queryset.order_by("id").iterator():
        writer.writerow(
            [
                event.pk,
                timezone.localtime(event.created_at).isoformat(),
                event.rule,
                event.action,
                event.order_no,
                event.distributor_id or "",
                event.matched_on,
                _csv_safe(event.explanation),
                _csv_safe(event.outcome),
            ]
        )
    return response


@admin.register(RiskEvent)
class RiskEventAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "rule",
        "action",
        "order_no",
        "distributor_id",
        "matched_on",
        "explanation",
        "outcome",
    ]
    list_filter = ["rule", "action", "created_at"]
    search_fields = ["order_no", "explanation"]
    date_hierarchy = "created_at"
    actions = ["export_csv"]
    readonly_fields = [field.name for field in RiskEvent._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description=_("导出所选风控事件（CSV）"), permissions=["view"])
    def export_csv(self, request, queryset):
        return _events_csv(queryset)

    def get_urls(self):
        return [
            path(
                "export/",
                self.admin_site.admin_view(self.export_view),
                name="riskcontrol_riskevent_export",
            ),
        ] + super().get_urls()

    def export_view(self, request):
        """Every event the current filters show (or all), as CSV."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        changelist = self.get_changelist_instance(request)
        return _events_csv(changelist.get_queryset(request))


class BlacklistAddForm(forms.ModelForm):
    value = forms.CharField(
        label=_("值"),
        max_length=200,
        help_text=_(
            "IP 或网段（如 10.0.0.0/8）、设备标识、联系方式、支付账户、身份证号或分销商编号"
        ),
    )
    valid_days = parsing.IntegerField(
        label=_("有效天数"),
        min_value=1,
        max_value=3650,
        required=False,
        help_text=_("留空为永久"),
    )

    class Meta:
        model = BlacklistEntry
        fields = ["kind", "reason"]

    def clean(self):
        from .services.blacklist import _normalize

        cleaned = super().clean()
        if cleaned.get("kind") and cleaned.get("value"):
            try:
                _normalize(cleaned["kind"], cleaned["value"])
            except ValidationError as error:
                self.add_error("value", error)
        return cleaned


class BlacklistImportForm(forms.Form):
    file = forms.FileField(
        label=_("CSV 文件"),
        help_text=_("列：kind,value,reason,expires_at（可选，如 2026-12-31）"),
    )


@admin.register(BlacklistEntry)
class BlacklistEntryAdmin(admin.ModelAdmin):
    list_display = [
        "kind",
        "display_value",
        "reason",
        "expires_at",
        "is_active",
        "created_by",
        "created_at",
    ]
    list_select_related = ["created_by"]
    list_filter = ["kind", "created_at"]
    search_fields = ["display_value", "reason"]
    actions = ["remove_entries"]
    change_list_template = "riskcontrol/blacklist_changelist.html"

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = BlacklistAddForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["kind", "value", "reason", "valid_days"]
        return [
            "kind",
            "display_value",
            "reason",
            "expires_at",
            "created_by",
            "created_at",
        ]

    def get_readonly_fields(self, request, obj=None):
        return (
            []
            if obj is None
            else [
                "kind",
                "display_value",
                "reason",
                "expires_at",
                "created_by",
                "created_at",
            ]
        )

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(boolean=True, description=_("生效中"))
    def is_active(self, entry):
        return entry.expires_at is None or entry.expires_at > timezone.now()

    def save_model(self, request, obj, form, change):
        """Through the service: normalised value, blind index, audit."""
        days = form.cleaned_data.get("valid_days")
        entry = add_to_blacklist(
            kind=form.cleaned_data["kind"],
            value=form.cleaned_data["value"],
            reason=form.cleaned_data["reason"],
            actor=request.user,
            expires_at=timezone.now() + timezone.timedelta(days=days) if days else None,
            request=request,
        )
        for model_field in entry._meta.concrete_fields:
            setattr(obj, model_field.attname, getattr(entry, model_field.attname))

    def save_form(self, request, form, change):
        return form.instance

    def save_related(self, request, form, formsets, change):
        pass

    @admin.action(description=_("移出黑名单"), permissions=["change"])
    def remove_entries(self, request, queryset):
        count = 0
        for entry in queryset:
            try:
                remove_from_blacklist(entry=entry, actor=request.user, request=request)
            except ValidationError as error:  # four eyes: an entry about the reviewer
                messages.error(request, f"{entry}: {' '.join(error.messages)}")
                continue
            count += 1
        messages.success(request, gettext("已移出 %(count)s 条") % {"count": count})

    def get_urls(self):
        return [
            path(
                "export/",
                self.admin_site.admin_view(self.export_view),
                name="riskcontrol_blacklistentry_export",
            ),
            path(
                "import/",
                self.admin_site.admin_view(self.import_view),
                name="riskcontrol_blacklistentry_import",
            ),
        ] + super().get_urls()

    def export_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        response = HttpResponse(
            "\ufeff" + export_blacklist_csv(), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = (
            f'attachment; filename="blacklist-{datetime.now():%Y%m%d}.csv"'
        )
        return response

    def import_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = BlacklistImportForm(request.POST or None, request.FILES or None)
        errors: list[str] = []
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            if upload.size > MAX_UPLOAD_BYTES:
                errors = [gettext("文件过大（最大 2 MB）")]
            elif not upload.name.lower().endswith((".csv", ".txt")):
                errors = [gettext("请上传 .csv 文件")]
            else:
                added, errors = import_blacklist_csv(
                    content=upload.read(), actor=request.user, request=request
                )
                if not errors:
                    messages.success(
                        request, gettext("已导入 %(count)s 条") % {"count": added}
                    )
                    return HttpResponseRedirect(
                        reverse("admin:riskcontrol_blacklistentry_changelist")
                    )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "form": form,
            "import_errors": errors,
            "title": gettext("导入黑名单"),
        }
        return TemplateResponse(request, "riskcontrol/blacklist_import.html", context)


@admin.register(RealNameVerification)
class RealNameVerificationAdmin(admin.ModelAdmin):
    """Masks only; the encrypted originals never reach a page."""

    list_display = [
        "distributor",
        "status",
        "name_mask",
        "id_number_mask",
        "bank_card_mask",
        "mobile_mask",
        "provider",
        "created_at",
    ]
    list_filter = ["status", "provider"]
    search_fields = ["distributor__invite_code", "name_mask"]
    fields = [
        "distributor",
        "status",
        "name_mask",
        "id_number_mask",
        "bank_card_mask",
        "mobile_mask",
        "provider",
        "provider_reference",
        "failure_reason",
        "created_at",
    ]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
