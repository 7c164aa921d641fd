"""Console pages for staff accounts and the audit log."""

import json
from functools import wraps

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from .models import AuditLogEntry, User


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ["username", "display_name", "phone", "email", "is_staff", "is_active", "role_names", "last_login"]
    list_filter = ["is_staff", "is_superuser", "is_active", "groups"]
    search_fields = ["username", "display_name", "phone", "email"]
    fieldsets = [
        (None, {"fields": ["username", "password"]}),
        (_("个人信息"), {"fields": ["display_name", "phone", "email", "first_name", "last_name"]}),
        (_("角色与权限"), {"fields": ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]}),
        (_("重要日期"), {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [
        (
            None,
            {
                "classes": ["wide"],
                "fields": ["username", "display_name", "phone", "password1", "password2", "is_staff", "groups"],
            },
        )
    ]
    readonly_fields = ["last_login", "date_joined"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("groups")

    @admin.display(description=_("角色"))
    def role_names(self, user):
        return "、".join(group.name for group in user.groups.all()) or "—"


class ActionListFilter(admin.SimpleListFilter):
    """Filter by the action's area (catalog.product, auth …) as well as by the exact action."""

    title = _("动作")
    parameter_name = "action"

    def lookups(self, request, model_admin):
        actions = AuditLogEntry.objects.order_by("action").values_list("action", flat=True).distinct()
        return [(action, action) for action in actions]

    def queryset(self, request, queryset):
        return queryset.filter(action=self.value()) if self.value() else queryset


@admin.register(AuditLogEntry)
class AuditLogEntryAdmin(admin.ModelAdmin):
    """Read-only: the log is append-only (the database refuses UPDATE and DELETE as well)."""

    list_display = ["created_at", "actor_name", "action", "target_type", "target_repr", "changes_summary", "ip_address"]
    list_filter = [ActionListFilter, "target_type", "created_at", "actor"]
    search_fields = ["actor_name", "action", "target_repr", "target_id"]
    date_hierarchy = "created_at"
    list_select_related = ["actor"]
    list_per_page = 100
    fields = [
        "created_at",
        "actor",
        "actor_name",
        "action",
        "target_type",
        "target_id",
        "target_repr",
        "changes_pretty",
        "ip_address",
    ]
    readonly_fields = fields

    @admin.display(description=_("变更"))
    def changes_summary(self, entry):
        parts = [f"{name}: {_describe(value)}" for name, value in list(entry.changes.items())[:3]]
        if len(entry.changes) > 3:
            parts.append("…")
        return "；".join(parts) or "—"

    @admin.display(description=_("变更"))
    def changes_pretty(self, entry):
        return format_html("<pre>{}</pre>", json.dumps(entry.changes, ensure_ascii=False, indent=2))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def _describe(value) -> str:
    if isinstance(value, list) and len(value) == 2:
        return f"{value[0]} → {value[1]}"
    return str(value)


# --- the RQ dashboard ------------------------------------------------------------------------------
import django_rq.admin  # noqa: E402  (registers django-rq's own admin first, replaced below)
from django.core.exceptions import PermissionDenied  # noqa: E402
from django_rq.models import Dashboard  # noqa: E402
from rq.exceptions import InvalidJobOperation  # noqa: E402


def _require_known_rq_objects(kwargs) -> None:
    """404 for a queue, connection, job or worker that does not exist: django-rq indexes its
    lists and fetches jobs and workers unchecked, so an unknown id was a 500."""
    from django.http import Http404
    from django_rq.connection_utils import get_unique_connection_configs
    from django_rq.queues import get_queue_by_index, get_queues_list
    from rq.job import Job
    from rq.worker import Worker

    sizes = {
        "queue_index": len(get_queues_list()),
        "scheduler_index": len(get_queues_list()),
        "connection_index": len(get_unique_connection_configs()),
    }
    for name, size in sizes.items():
        if name in kwargs and not 0 <= int(kwargs[name]) < size:
            raise Http404
    if "queue_index" not in kwargs or not ({"job_id", "key"} & set(kwargs)):
        return
    connection = get_queue_by_index(kwargs["queue_index"]).connection
    if "job_id" in kwargs and not Job.exists(kwargs["job_id"], connection=connection):
        raise Http404
    if "key" in kwargs:
        try:
            worker = Worker.find_by_key(kwargs["key"], connection=connection)
        except ValueError:  # not a worker key at all
            worker = None
        if worker is None:
            raise Http404


def _rq_guard(view):
    """Staff without the rq permission are refused; others keep django-rq's own answer (log-in
    page, or the API token of the stats endpoints), and unknown ids are 404s."""

    @wraps(view)
    def guarded(request, *args, **kwargs):
        user = request.user
        if user.is_authenticated and user.is_staff:
            if not user.has_perm("django_rq.admin"):
                raise PermissionDenied
            _require_known_rq_objects(kwargs)
        try:
            return view(request, *args, **kwargs)
        except InvalidJobOperation as refused:  # e.g. requeue a job that has not failed: a 500 in django-rq
            from django.contrib import messages
            from django.shortcuts import redirect

            messages.error(request, _("这个任务现在不能这样操作：%(reason)s") % {"reason": refused})
            if "job_id" in kwargs:
                return redirect("admin:django_rq_job_detail", kwargs["queue_index"], kwargs["job_id"])
            return redirect("admin:django_rq_home")

    return guarded


class QueueAdmin(django_rq.admin.QueueAdmin):
    """django-rq checks only is_staff, so every operator could read job arguments, delete jobs
    and empty queues. Here the dashboard needs its own permission (``django_rq.admin``: the
    owner's). The dashboard has no table: the add, change, delete and history pages it would
    inherit only crash, so only its list (the stats page) is kept; so does the rq-scheduler page,
    a package Kamen does not use."""

    def has_module_permission(self, request):
        return request.user.has_perm("django_rq.admin")

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("django_rq.admin")

    def has_change_permission(self, request, obj=None):
        return request.user.has_perm("django_rq.admin")

    def get_urls(self):
        patterns = [
            pattern
            for pattern in super().get_urls()
            if pattern.name and not pattern.name.endswith(("_add", "_history", "_delete", "_change", "_scheduler_jobs"))
        ]
        for pattern in patterns:
            pattern.callback = _rq_guard(pattern.callback)
        return patterns


if admin.site.is_registered(Dashboard):
    admin.site.unregister(Dashboard)
admin.site.register(Dashboard, QueueAdmin)
