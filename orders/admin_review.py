"""Risk staff's review queue in the console: the cases are riskcontrol's, the decision acts on
the order (``orders.services.review``), so the page lives with the orders app."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from riskcontrol.models import ReviewCase, ReviewStatus, RiskEvent

from .services.review import reject_held_order, release_held_order


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(
        label=_("结论"),
        choices=[
            (ReviewStatus.APPROVED, _("通过（恢复发货）")),
            (ReviewStatus.REJECTED, _("拒绝（退款）")),
        ],
    )
    reason = forms.CharField(
        label=_("审核意见"),
        max_length=200,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
    )


@admin.register(ReviewCase)
class ReviewCaseAdmin(admin.ModelAdmin):
    list_display = [
        "order",
        "status",
        "reasons",
        "created_at",
        "decided_by",
        "decided_at",
        "decide_link",
    ]
    list_filter = ["status", "created_at"]
    search_fields = ["order__order_no", "reasons"]
    list_select_related = ["order", "decided_by"]
    readonly_fields = [field.name for field in ReviewCase._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=_("审核"))
    def decide_link(self, case):
        from django.utils.html import format_html

        if case.status != ReviewStatus.PENDING:
            return "—"
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:riskcontrol_reviewcase_decide", args=[case.pk]),
            gettext("审核"),
        )

    def get_urls(self):
        return [
            path(
                "<int:pk>/decide/",
                self.admin_site.admin_view(self.decide_view),
                name="riskcontrol_reviewcase_decide",
            ),
        ] + super().get_urls()

    def decide_view(self, request, pk):
        case = get_object_or_404(
            ReviewCase.objects.select_related("order", "signal"), pk=pk
        )
        if not request.user.has_perm("riskcontrol.decide_reviewcase"):
            raise PermissionDenied
        form = DecisionForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            decision, reason = (
                form.cleaned_data["decision"],
                form.cleaned_data["reason"],
            )
            try:
                if decision == ReviewStatus.APPROVED:
                    release_held_order(
                        order=case.order,
                        actor=request.user,
                        reason=reason,
                        request=request,
                    )
                    messages.success(request, gettext("已通过，订单恢复发货"))
                else:
                    reject_held_order(
                        order=case.order,
                        actor=request.user,
                        reason=reason,
                        request=request,
                    )
                    messages.success(request, gettext("已拒绝，已发起退款"))
                return HttpResponseRedirect(
                    reverse("admin:riskcontrol_reviewcase_changelist")
                )
            except ValidationError as error:
                for message in error.messages:
                    form.add_error(None, message)
            except Exception as error:  # noqa: BLE001 — the refund gateway failed: the decision stands, say so
                messages.error(
                    request,
                    gettext("审核已记录，但退款失败：%(error)s") % {"error": error},
                )
                return HttpResponseRedirect(
                    reverse("admin:riskcontrol_reviewcase_changelist")
                )
        events = (
            RiskEvent.objects.filter(signal_id=case.signal_id)
            if case.signal_id
            else RiskEvent.objects.none()
        )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "case": case,
            "order": case.order,
            "events": events,
            "form": form,
            "title": gettext("风控审核 %(order_no)s")
            % {"order_no": case.order.order_no},
        }
        return TemplateResponse(request, "riskcontrol/review_decide.html", context)
