"""The docking console (对接管理) in the merchant console (docs/adr/0019).

It lives with the open API in the orders app because its pages act across apps: a site and its
keys are distribution's, its prepaid balance the ledger's (commissions), its refund requests
the orders'. Every action calls one service; secrets are shown once, on the page that made
them, and never again (the lists show key ids only).
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from commissions.services.prepaid import prepaid_balance, top_up_prepaid
from distribution.docking.models import ApiKey, ApiScope, DockingSite, WebhookAttempt, WebhookEvent
from distribution.docking.services import (
    apply_for_docking,
    approve_docking_site,
    create_api_key,
    revoke_api_key,
    set_webhook,
    suspend_docking_site,
)
from distribution.docking.webhooks import resend_webhook_event
from kamen import parsing

from .models import ApiRefundRequest, DockingOrder
from .services import approve_refund_request, reject_refund_request


def _errors(request, error: ValidationError) -> None:
    for message in error.messages:
        messages.error(request, message)


class ReadOnlyInline(admin.TabularInline):
    """Rows the console shows and never edits: each changes only through its service."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    """A list and a page to read: every change is one of the page's actions (a service)."""

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ApiKeyInline(ReadOnlyInline):
    model = ApiKey
    fields = ["key_id", "label", "scopes", "is_active", "last_used_at", "created_at"]


class TopUpForm(forms.Form):
    amount = parsing.DecimalField(label=_("充值金额"), max_digits=14, decimal_places=2, min_value=0.01)
    reference = forms.CharField(label=_("收款单号"), max_length=60, help_text=_("同一单号只入账一次"))


class IssueKeyForm(forms.Form):
    label = forms.CharField(label=_("备注"), max_length=40, required=False)
    scopes = forms.MultipleChoiceField(
        label=_("权限范围"), choices=ApiScope.choices, widget=forms.CheckboxSelectMultiple
    )


class WebhookForm(forms.Form):
    url = forms.URLField(label=_("回调地址"), max_length=300, assume_scheme="https")


@admin.register(DockingSite)
class DockingSiteAdmin(admin.ModelAdmin):
    list_display = ["name", "distributor", "status", "credit_limit", "prepaid", "webhook_url", "created_at"]
    list_filter = ["status"]
    search_fields = ["name", "contact_email", "distributor__invite_code", "distributor__user__username"]
    readonly_fields = ["status", "prepaid", "approved_by", "approved_at", "webhook_url", "created_at"]
    autocomplete_fields = []
    raw_id_fields = ["distributor"]
    inlines = [ApiKeyInline]
    actions = ["approve_selected", "suspend_selected"]

    def get_fields(self, request, obj=None):
        base = ["name", "contact_email", "credit_limit", "ip_allowlist", "requests_per_minute", "order_limit"]
        if obj is None:
            return ["distributor", *base]
        return ["distributor", *base, *self.readonly_fields]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "distributor"] if obj is not None else []

    @admin.display(description=_("预存款余额"))
    def prepaid(self, obj):
        return prepaid_balance(obj.distributor_id)

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        made = apply_for_docking(
            distributor=obj.distributor,
            name=obj.name,
            contact_email=obj.contact_email,
            ip_allowlist=obj.ip_allowlist,
        )
        DockingSite.objects.filter(pk=made.pk).update(
            credit_limit=obj.credit_limit, requests_per_minute=obj.requests_per_minute, order_limit=obj.order_limit
        )
        obj.pk = made.pk
        obj.status = made.status

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description=_("审核通过所选对接商户"), permissions=["approve"])
    def approve_selected(self, request, queryset):
        for site in queryset:
            try:
                approve_docking_site(
                    site=site, actor=request.user, credit_limit=str(site.credit_limit), request=request
                )
            except ValidationError as error:
                _errors(request, error)

    @admin.action(description=_("暂停所选对接商户"), permissions=["approve"])
    def suspend_selected(self, request, queryset):
        for site in queryset:
            suspend_docking_site(site=site, actor=request.user, reason=gettext("控制台暂停"), request=request)

    def has_approve_permission(self, request):
        return request.user.has_perm("distribution.approve_dockingsite")

    def get_urls(self):
        own = [
            path(
                "<int:pk>/top-up/", self.admin_site.admin_view(self.top_up_view), name="distribution_dockingsite_top_up"
            ),
            path(
                "<int:pk>/issue-key/",
                self.admin_site.admin_view(self.issue_key_view),
                name="distribution_dockingsite_issue_key",
            ),
            path(
                "<int:pk>/webhook/",
                self.admin_site.admin_view(self.webhook_view),
                name="distribution_dockingsite_webhook",
            ),
        ]
        return own + super().get_urls()

    def _page(self, request, site, *, title, form, secret=""):
        """The site's console form page; 400 when the posted form had errors."""
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "site_obj": site,
            "title": title,
            "form": form,
            "secret": secret,
            "change_url": reverse("admin:distribution_dockingsite_change", args=[site.pk]),
        }
        status = 400 if form is not None and form.errors else 200
        return TemplateResponse(request, "orders/docking_console_form.html", context, status=status)

    def _site_for(self, request, pk, permission):
        if not request.user.has_perm(permission):
            raise PermissionDenied
        return get_object_or_404(DockingSite, pk=pk)

    def top_up_view(self, request, pk):
        site = self._site_for(request, pk, "distribution.top_up_prepaid")
        form = TopUpForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                top_up_prepaid(
                    distributor_id=site.distributor_id,
                    amount=str(form.cleaned_data["amount"]),
                    reference=f"{site.pk}:{form.cleaned_data['reference']}",
                    actor=request.user,
                    request=request,
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                messages.success(request, gettext("已入账 ¥%(amount)s") % {"amount": form.cleaned_data["amount"]})
                return redirect("admin:distribution_dockingsite_change", site.pk)
        return self._page(request, site, title=gettext("预存款充值"), form=form)

    def issue_key_view(self, request, pk):
        site = self._site_for(request, pk, "distribution.manage_api_keys")
        form = IssueKeyForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            key, secret = create_api_key(
                site=site,
                scopes=form.cleaned_data["scopes"],
                label=form.cleaned_data["label"],
                actor=request.user,
                request=request,
            )
            return self._page(
                request, site, title=gettext("新密钥 %(key)s") % {"key": key.key_id}, form=None, secret=secret
            )
        return self._page(request, site, title=gettext("签发对接密钥"), form=form)

    def webhook_view(self, request, pk):
        site = self._site_for(request, pk, "distribution.manage_api_keys")
        form = WebhookForm(request.POST or None, initial={"url": site.webhook_url})
        if request.method == "POST" and form.is_valid():
            secret = set_webhook(site=site, url=form.cleaned_data["url"], actor=request.user, request=request)
            return self._page(request, site, title=gettext("回调密钥"), form=None, secret=secret)
        return self._page(
            request,
            site,
            title=gettext("设置回调地址（将生成新的回调密钥）"),
            form=form,
        )


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyAdmin):
    list_display = ["key_id", "site", "label", "scopes", "is_active", "last_used_at", "created_at", "revoked_at"]
    list_filter = ["is_active"]
    search_fields = ["key_id", "site__name", "label"]
    fields = [
        "key_id",
        "site",
        "label",
        "scopes",
        "is_active",
        "last_used_at",
        "created_by",
        "created_at",
        "revoked_at",
        "revoked_by",
    ]
    actions = ["revoke_selected"]

    def has_manage_permission(self, request):
        return request.user.has_perm("distribution.manage_api_keys")

    @admin.action(description=_("吊销所选密钥"), permissions=["manage"])
    def revoke_selected(self, request, queryset):
        for key in queryset:
            revoke_api_key(key=key, actor=request.user, request=request)


class WebhookAttemptInline(ReadOnlyInline):
    model = WebhookAttempt
    fields = ["created_at", "status_code", "error", "duration_ms", "is_manual"]


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = [
        "event_id",
        "site",
        "kind",
        "status",
        "attempts",
        "last_status_code",
        "next_attempt_at",
        "created_at",
    ]
    list_filter = ["status", "kind"]
    search_fields = ["event_id", "site__name"]
    fields = [
        "event_id",
        "site",
        "kind",
        "status",
        "attempts",
        "last_status_code",
        "next_attempt_at",
        "delivered_at",
        "created_at",
        "payload",
    ]
    inlines = [WebhookAttemptInline]
    actions = ["resend_selected"]

    def has_resend_permission(self, request):
        return request.user.has_perm("distribution.resend_webhookevent")

    @admin.action(description=_("立即重发所选回调"), permissions=["resend"])
    def resend_selected(self, request, queryset):
        for event in queryset[:50]:
            resend_webhook_event(event=event, actor=request.user, request=request)


@admin.register(DockingOrder)
class DockingOrderAdmin(ReadOnlyAdmin):
    list_display = ["client_order_no", "site", "order", "created_at"]
    search_fields = ["client_order_no", "order__order_no", "site__name"]
    fields = ["site", "order", "client_order_no", "created_at"]


@admin.register(ApiRefundRequest)
class ApiRefundRequestAdmin(ReadOnlyAdmin):
    list_display = ["docking_order", "reason", "status", "created_at", "decided_by", "decided_at"]
    list_filter = ["status"]
    fields = ["docking_order", "reason", "status", "created_at", "decided_by", "decided_at"]
    actions = ["approve_selected", "reject_selected"]

    def has_refund_permission(self, request):
        return request.user.has_perm("orders.refund_order")

    @admin.action(description=_("同意所选退款（退回预存款）"), permissions=["refund"])
    def approve_selected(self, request, queryset):
        for refund_request in queryset:
            try:
                approve_refund_request(refund_request=refund_request, actor=request.user, request=request)
            except (ValidationError, PermissionDenied) as error:
                messages.error(request, str(error))

    @admin.action(description=_("驳回所选退款申请"), permissions=["refund"])
    def reject_selected(self, request, queryset):
        for refund_request in queryset:
            try:
                reject_refund_request(refund_request=refund_request, actor=request.user, request=request)
            except ValidationError as error:
                _errors(request, error)
