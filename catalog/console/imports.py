"""Bulk card-key import in the console: form → preview → confirm → progress."""

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import ValidationError
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from catalog import services
from catalog.forms import CardKeyImportForm
from catalog.models import CardKeyImport

IMPORT_PERMISSION = "catalog.import_cardkeys"


def _guard(view):
    return staff_member_required(permission_required(IMPORT_PERMISSION, raise_exception=True)(view))


@_guard
def import_new(request):
    form = CardKeyImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            import_job = services.start_card_key_import(
                product=data["product"],
                actor=request.user,
                text=data["text"],
                source_name=data["source_name"],
                input_format=data["input_format"],
                separator=data["separator"],
                supplier=data["supplier"],
                unit_cost=data["unit_cost"],
                default_expires_at=data["default_expires_at"],
            )
        except ValidationError as error:
            for message in error.messages:
                form.add_error(None, message)
        else:
            return redirect("console:card-key-import-detail", pk=import_job.pk)
    return render(request, "catalog/console/import_new.html", {"form": form, "title": _("导入卡密")})


def _imports():
    """Import rows without their payload: the validated keys are megabytes per 100,000 and no
    page shows them; a progress poll every second must not read them."""
    return CardKeyImport.objects.defer("payload_ciphertext")


@_guard
def import_detail(request, pk):
    import_job = get_object_or_404(_imports().select_related("product"), pk=pk)
    return render(
        request,
        "catalog/console/import_detail.html",
        {"import_job": import_job, "progress": services.import_progress(import_job=import_job), "title": _("导入详情")},
    )


@_guard
def import_status(request, pk):
    import_job = get_object_or_404(_imports(), pk=pk)
    return JsonResponse(services.import_progress(import_job=import_job))


@require_POST
@_guard
def import_confirm(request, pk):
    import_job = get_object_or_404(_imports(), pk=pk)
    try:
        services.confirm_card_key_import(import_job=import_job, actor=request.user)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    return redirect("console:card-key-import-detail", pk=pk)


@require_POST
@_guard
def import_cancel(request, pk):
    import_job = get_object_or_404(_imports(), pk=pk)
    try:
        services.cancel_card_key_import(import_job=import_job, actor=request.user)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    return redirect("console:card-key-import-detail", pk=pk)


urlpatterns = [
    path("imports/new/", import_new, name="card-key-import"),
    path("imports/<int:pk>/", import_detail, name="card-key-import-detail"),
    path("imports/<int:pk>/status/", import_status, name="card-key-import-status"),
    path("imports/<int:pk>/confirm/", import_confirm, name="card-key-import-confirm"),
    path("imports/<int:pk>/cancel/", import_cancel, name="card-key-import-cancel"),
]
