"""Pages of risk control outside the admin: a distributor's real-name check, staff 2FA."""

from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from distribution.views import distributor_required

from .kyc import submit_real_name
from .models import RealNameStatus
from .selectors import verified_real_name

FIELDS = ("name", "id_number", "bank_card", "mobile")


@distributor_required
def real_name(request, viewer):
    verified = verified_real_name(distributor=viewer)
    errors: dict[str, list[str]] = {}
    notice = ""
    values = {field: "" for field in FIELDS}
    if request.method == "POST" and verified is None:
        # Only name and mobile go back into the form on error; numbers are retyped.
        values = {field: request.POST.get(field, "")[:64] for field in FIELDS}
        try:
            result = submit_real_name(distributor=viewer, **values)
        except ValidationError as error:
            errors = (
                error.message_dict
                if hasattr(error, "error_dict")
                else {"__all__": error.messages}
            )
        else:
            if result.status == RealNameStatus.VERIFIED:
                return redirect("riskcontrol:real-name")
            notice = result.failure_reason or _("认证未通过")
        values = {
            "name": values["name"],
            "mobile": values["mobile"],
            "id_number": "",
            "bank_card": "",
        }
    return render(
        request,
        "riskcontrol/real_name.html",
        {
            "viewer": viewer,
            "verified": verified,
            "errors": errors,
            "notice": notice,
            "values": values,
        },
        status=400 if errors else 200,
    )
