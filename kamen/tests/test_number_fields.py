"""Every number field of every form in the project (the admin's model forms and inlines
included) reads ASCII digits only: found by walking the forms, not by a list."""

import importlib
from functools import partial

import pytest
from django import forms
from django.apps import apps
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.forms import modelform_factory
from django.test import RequestFactory
from django.urls import get_resolver

from .number_inputs import NOT_NUMBERS

pytestmark = pytest.mark.django_db
PROJECT_APPS = ("kamen", "catalog", "distribution", "orders", "commissions", "riskcontrol")


def project_forms() -> dict[str, dict[str, forms.Field]]:
    """``{form name: {field name: field}}`` for every Form class defined in the project's apps."""
    get_resolver().url_patterns  # noqa: B018  (imports every view module and its forms)
    for app in PROJECT_APPS:
        for module in ("forms", "admin"):
            try:
                importlib.import_module(f"{app}.{module}")
            except ModuleNotFoundError:
                pass

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    found = {}
    for form in set(subclasses(forms.BaseForm)):
        if form.__module__.split(".")[0] not in PROJECT_APPS or not hasattr(form, "base_fields"):
            continue
        # A model form's other fields are made again by the admin that uses it (admin_forms).
        fields = form.declared_fields if issubclass(form, forms.ModelForm) else form.base_fields
        found[f"{form.__module__}.{form.__qualname__}"] = dict(fields)
    return found


def admin_form_fields(model_admin, request) -> dict[str, forms.Field]:
    """Every editable field of the model as this admin (or inline) would make it."""
    form = modelform_factory(
        model_admin.model,
        form=model_admin.form,
        fields="__all__",
        formfield_callback=partial(model_admin.formfield_for_dbfield, request=request),
    )
    return dict(form.base_fields)


def admin_forms(superuser) -> dict[str, dict[str, forms.Field]]:
    request = RequestFactory().get("/admin/")
    request.user = superuser
    found = {}
    for model, model_admin in admin.site._registry.items():
        if not model._meta.managed:
            continue
        found[f"admin {model._meta.label}"] = admin_form_fields(model_admin, request)
        for inline in model_admin.get_inline_instances(request):
            found[f"admin {model._meta.label} inline {inline.model._meta.label}"] = admin_form_fields(inline, request)
    return found


def test_every_number_field_refuses_lookalike_numbers(django_user_model):
    superuser = django_user_model.objects.create_superuser("number-fields", password="x")
    everything = project_forms() | admin_forms(superuser)
    checked, lenient = 0, []
    for form, fields in everything.items():
        for name, field in fields.items():
            if not isinstance(field, forms.IntegerField | forms.FloatField):  # DecimalField is one
                continue
            checked += 1
            for text in NOT_NUMBERS:
                try:
                    field.clean(text)
                except ValidationError:
                    continue
                lenient.append(f"{form}.{name} accepts {text!r}")
    assert lenient == [], "\n".join(lenient)
    assert checked >= 20, f"only {checked} number fields found: the walk is broken"


def test_admin_model_forms_have_number_fields_to_check():
    labels = {model._meta.label for model in admin.site._registry}
    assert {"catalog.Product", "distribution.Grade", "commissions.CommissionRule"} <= labels
    assert apps.get_model("catalog", "Product")._meta.get_field("retail_price").get_internal_type() == "DecimalField"
