"""Reads of the distribution network.

Tree reads take one query each: a subtree is ``tree_id`` plus ``lft`` between the node's
nested-set bounds; ancestors are a recursive walk up the parent column (see ``ancestors``).

Everything the agent portal shows goes through a function here that takes the acting
distributor (``viewer``) and filters by its subtree — by construction, not by remembering a
filter in a view. A member or order outside it is simply not found (404).
"""

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import NamedTuple

from django.db import connection
from django.db.models import (
    Count,
    DecimalField,
    F,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce
from django.http import Http404
from django.utils import timezone

from . import sql as distribution_sql
from .models import (
    Channel,
    Distributor,
    DistributorDailySales,
    DistributorStatus,
    DistributorTeamTotals,
    ReferralLink,
)

ZERO = Decimal("0.00")
MONEY_FIELD = DecimalField(max_digits=14, decimal_places=2)


# The orders app sits above distribution and hands its Order model over in its
# AppConfig.ready() (``register_order_model``): distribution reads its distributors' sales
# from it — filters on distributor_id, status, paid_at and the amounts — and never imports it.
_order_model_registered = None


def register_order_model(model) -> None:
    global _order_model_registered
    _order_model_registered = model


def _order_model():
    if _order_model_registered is None:
        raise RuntimeError("the orders app registers its Order model (orders.apps.OrdersConfig.ready)")
    return _order_model_registered


# Order statuses (``orders.models.OrderStatus`` values; orders' tests check they exist) that
# count as sales: paid and not (fully) refunded or expired.
SOLD_STATUSES = ("paid", "fulfilling", "backordered", "completed", "partially_fulfilled", "partially_refunded")


def sold_statuses() -> list[str]:
    """Orders that count as sales: paid and not (fully) refunded or expired."""
    return list(SOLD_STATUSES)


# --- the tree --------------------------------------------------------------------------------
def may_see_cost_prices(viewer: Distributor) -> bool:
    """Whether the portal may show this distributor any cost figure (their own or others'
    拿货价, the floor of their sub-store prices, commission bases computed from a margin):
    the grade's ``may_see_floor_price``."""
    return bool(viewer.grade.may_see_floor_price)


def distributor_for_user(user) -> Distributor | None:
    if not getattr(user, "is_authenticated", False):
        return None
    return Distributor.objects.select_related("grade", "user").filter(user=user).first()


def users_with_a_stake_in_order(*, distributor_id: int | None, attribution: dict | None) -> set[int]:
    """The user ids of everyone an order's money concerns: the seller, the upline its
    commissions go to (the snapshot's chain) and a distributor who bought it themselves. The
    four-eyes rule keeps them from deciding anything about it."""
    attribution = attribution or {}
    ids = {distributor_id, attribution.get("buyer_distributor_id"), *(attribution.get("chain") or [])}
    return user_ids_of_distributors(pk for pk in ids if isinstance(pk, int))


def user_ids_of_distributors(ids) -> set[int]:
    """The accounts behind distributor ids (no query for none)."""
    ids = set(ids)
    if not ids:
        return set()
    return set(Distributor.objects.filter(pk__in=ids).values_list("user_id", flat=True))


# Far deeper than any real network; bounds the walk should the parent column ever loop.
_UPLINE_LIMIT = 10_000


class Ancestor(NamedTuple):
    """One distributor of an upline, as the tree reads need it."""

    pk: int
    parent_id: int | None
    user_id: int
    grade_id: int
    level: int


def ancestors(distributor: Distributor | int, *, depth: int | None = None) -> list[Ancestor]:
    """The distributors above (a distributor or its id), nearest first, at most ``depth`` of
    them (one query, ``sql.UPLINE``). Plain rows, not model instances: building 48 MPTT
    instances costs several times the query itself, and every caller wants ids, grades or
    levels."""
    limit = _UPLINE_LIMIT if depth is None else min(depth, _UPLINE_LIMIT)
    if limit <= 0:
        return []
    pk = distributor if isinstance(distributor, int) else distributor.pk
    with connection.cursor() as cursor:
        cursor.execute(distribution_sql.UPLINE, [pk, limit])
        return [Ancestor._make(row) for row in cursor.fetchall()]


def upline_ids(distributor: Distributor | int, *, depth: int) -> list[int]:
    """The ids of at most ``depth`` ancestors, nearest first: the chain an order snapshots."""
    return [row.pk for row in ancestors(distributor, depth=depth)]


def trail(viewer: Distributor, member: Distributor) -> list[Distributor]:
    """The path from the viewer down to a member of their team (excluded), with the users for
    the breadcrumbs: the upline walk cut at the viewer's level, then one query for the rows."""
    if member.pk == viewer.pk:
        return []
    ids = [row.pk for row in ancestors(member, depth=member.level - viewer.level)]
    return list(Distributor.objects.select_related("user").filter(pk__in=ids).order_by("level"))


def subtree(viewer: Distributor, *, include_self: bool = True) -> QuerySet[Distributor]:
    """The viewer's subtree; the root of every portal read."""
    queryset = Distributor.objects.filter(tree_id=viewer.tree_id, lft__gte=viewer.lft, rght__lte=viewer.rght)
    if not include_self:
        queryset = queryset.exclude(pk=viewer.pk)
    return queryset


def _subtree_ids(viewer: Distributor) -> QuerySet:
    return subtree(viewer).values("pk")


def team_counts(viewer: Distributor) -> dict:
    """Team size (active, below the viewer), everyone below, new members this month, depth —
    one query."""
    month_start = timezone.localtime().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return subtree(viewer, include_self=False).aggregate(
        members=Count("pk"),
        active=Count("pk", filter=Q(status=DistributorStatus.ACTIVE)),
        new_this_month=Count("pk", filter=Q(joined_at__gte=month_start)),
        direct=Count("pk", filter=Q(parent_id=viewer.pk)),
        deepest=Coalesce(Max("level"), Value(viewer.level)),
    )


def team_sales(viewer: Distributor, *, since=None) -> dict:
    """Paid orders attributed to the viewer or anyone below, and their amount, one query: the
    all-time figure is the viewer's team-totals row (``DistributorTeamTotals``); a figure
    since a moment sums the orders themselves."""
    if since is None:
        totals = DistributorTeamTotals.objects.filter(distributor_id=viewer.pk).values("orders", "amount").first()
        if totals is None:
            return {"orders": 0, "amount": ZERO}
        return {"orders": totals["orders"], "amount": totals["amount"]}
    orders = _order_model().objects.filter(distributor_id__in=_subtree_ids(viewer), status__in=sold_statuses())
    if since is not None:
        orders = orders.filter(paid_at__gte=since)
    figures = orders.aggregate(
        orders=Count("pk"),
        amount=Coalesce(
            Sum(F("paid_amount") - F("refunded_amount"), output_field=MONEY_FIELD),
            Value(ZERO),
            output_field=MONEY_FIELD,
        ),
    )
    return figures


def team_totals(viewer: Distributor) -> dict:
    """Team size (everyone below, from the nested-set bounds) and the team's all-time orders
    and GMV (own sales included), one primary-key query."""
    sales = team_sales(viewer)
    return {
        "members": (viewer.rght - viewer.lft - 1) // 2,
        "orders": sales["orders"],
        "gmv": sales["amount"],
    }


def team_stats(viewer: Distributor) -> dict:
    counts = team_counts(viewer)
    counts["depth"] = counts.pop("deepest") - viewer.level
    return counts | {"gmv": team_sales(viewer)["amount"]}


# --- the portal ------------------------------------------------------------------------------
def team_member(viewer: Distributor, pk) -> Distributor:
    """A member of the viewer's subtree, or 404 — whoever else it may be."""
    member = subtree(viewer).select_related("grade", "user").filter(pk=pk).first()
    if member is None:
        raise Http404
    return member


def _sales_subquery():
    Order = _order_model()
    return Coalesce(
        Subquery(
            Order.objects.filter(distributor_id=OuterRef("pk"), status__in=sold_statuses())
            .order_by()
            .values("distributor_id")
            .annotate(total=Sum(F("paid_amount") - F("refunded_amount"), output_field=MONEY_FIELD))
            .values("total")[:1],
            output_field=MONEY_FIELD,
        ),
        Value(ZERO),
        output_field=MONEY_FIELD,
    )


def team_children(viewer: Distributor, parent: Distributor) -> QuerySet[Distributor]:
    """The direct members under ``parent`` (itself in the viewer's subtree), with grade, own
    sales and team size, for the expandable team view."""
    if not (parent.tree_id == viewer.tree_id and viewer.lft <= parent.lft and parent.rght <= viewer.rght):
        raise Http404
    return (
        subtree(viewer, include_self=False)
        .filter(parent_id=parent.pk)
        .select_related("grade", "user")
        .annotate(own_sales=_sales_subquery(), team_size=(F("rght") - F("lft") - 1) / 2)
        .order_by("lft")
    )


def network_orders(viewer: Distributor) -> QuerySet:
    """Orders attributed to the viewer or anyone below (newest first)."""
    return _order_model().objects.filter(distributor_id__in=_subtree_ids(viewer)).order_by("-created_at", "-id")


def network_order(viewer: Distributor, order_no: str):
    order = network_orders(viewer).filter(order_no=order_no).first()
    if order is None:
        raise Http404
    return order


def mask_contact(contact: str) -> str:
    """A buyer's contact as the network sees it: 138****1234, a***@example.com."""
    contact = str(contact or "")
    if "@" in contact:
        name, _at, domain = contact.partition("@")
        return f"{name[:1]}***@{domain}"
    if len(contact) >= 7:
        return f"{contact[:3]}****{contact[-4:]}"
    return "****"


@dataclass(frozen=True)
class DayFigure:
    day: object
    amount: Decimal
    orders: int = 0


def _daily_rows(viewer: Distributor, since_day) -> dict:
    """{day: (amount, orders)} of network sales from ``since_day`` on (local days), one query
    over the daily rollup of the subtree's members."""
    rows = (
        DistributorDailySales.objects.filter(
            distributor__tree_id=viewer.tree_id,
            distributor__lft__gte=viewer.lft,
            distributor__lft__lte=viewer.rght,
            day__gte=since_day,
        )
        .values("day")
        .annotate(amount=Sum("amount"), orders=Sum("orders"))
        .filter(orders__gt=0)
    )
    return {row["day"]: (row["amount"], row["orders"]) for row in rows}


def daily_sales(viewer: Distributor, *, days: int = 30, rows: dict | None = None) -> list[DayFigure]:
    """The last ``days`` days of network sales, one row per day (zeros included), one query."""
    start_day = timezone.localdate() - timedelta(days=days - 1)
    if rows is None:
        rows = _daily_rows(viewer, start_day)
    figures = []
    for offset in range(days):
        day = start_day + timedelta(days=offset)
        amount, orders = rows.get(day, (ZERO, 0))
        figures.append(DayFigure(day, amount, orders))
    return figures


def dashboard(viewer: Distributor) -> dict:
    """Today, this month, the 30-day chart (all from one grouped query over the days since the
    earlier of the month's start and 30 days ago) and the team counts (one query)."""
    today = timezone.localdate()
    month_start = today.replace(day=1)
    rows = _daily_rows(viewer, min(month_start, today - timedelta(days=29)))

    def total(days):
        amounts = [rows[day] for day in rows if day in days]
        return {
            "amount": sum((amount for amount, _orders in amounts), ZERO),
            "orders": sum(orders for _amount, orders in amounts),
        }

    month_days = {month_start + timedelta(days=offset) for offset in range((today - month_start).days + 1)}
    return {
        "notices": list(viewer.notices.all()[:5]),
        "today": total({today}),
        "month": total(month_days),
        "team": team_counts(viewer),
        "chart": daily_sales(viewer, rows=rows),
    }


def referral_links(viewer: Distributor) -> list[dict]:
    """The viewer's own links with clicks, orders placed, paid orders and conversion."""
    Order = _order_model()
    links = list(ReferralLink.objects.filter(distributor=viewer).select_related("sub_store").order_by("channel", "id"))
    paid = dict(
        Order.objects.filter(
            distributor_id=viewer.pk,
            status__in=sold_statuses(),
            attribution__link__in=[link.code for link in links],
        )
        .values_list("attribution__link")
        .annotate(total=Count("pk"))
        .values_list("attribution__link", "total")
    )
    result = []
    for link in links:
        paid_orders = paid.get(link.code, 0)
        result.append(
            {
                "link": link,
                "channel": Channel(link.channel).label,
                "paid_orders": paid_orders,
                "conversion": (Decimal(paid_orders * 100) / link.clicks).quantize(Decimal("0.1"))
                if link.clicks
                else None,
            }
        )
    return result
