"""团队业绩奖励: a leader whose team sold past a threshold last month earns one bonus."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.utils import timezone

from commissions import selectors, tasks
from commissions.models import (
    Commission,
    CommissionKind,
    JournalTransaction,
    TeamBonusRule,
)
from commissions.services import (
    previous_month,
    run_team_bonuses,
    save_team_bonus_rule,
    team_bonus_rule_problems,
)
from orders.models import Order

from .factories import make_chain, make_order, refund

pytestmark = pytest.mark.django_db


def _last_month():
    return previous_month(timezone.localdate())


def _sold_last_month(seller, paid):
    """An order attributed to ``seller``, paid in the middle of last month."""
    order = make_order(seller, paid=paid)
    moment = timezone.make_aware(timezone.datetime.combine(_last_month(), timezone.datetime.min.time())) + timedelta(
        days=10
    )
    Order.objects.filter(pk=order.pk).update(paid_at=moment, completed_at=moment)
    order.refresh_from_db()
    return order


@pytest.fixture
def team():
    """leader ← member ← seller; 1,000 threshold pays the leader ¥50."""
    seller, member, leader = make_chain(3)
    TeamBonusRule.objects.create(threshold=Decimal("1000.00"), fixed_amount=Decimal("50.00"))
    return seller, member, leader


def test_a_team_that_crosses_the_threshold_pays_its_leader_once(team):
    seller, member, leader = team
    _sold_last_month(seller, "600.00")
    _sold_last_month(member, "500.00")

    run_team_bonuses(month=_last_month())

    bonus = Commission.objects.get(kind=CommissionKind.TEAM_BONUS, beneficiary=leader)
    assert bonus.amount == Decimal("50.00") and bonus.base_amount == Decimal("1100.00")
    assert bonus.period == _last_month() and bonus.order_id is None
    assert selectors.wallet(leader)["pending"] == Decimal("50.00")
    # member's team (member + seller) also sold 1,100: each team leader earns on their own team
    assert Commission.objects.filter(kind=CommissionKind.TEAM_BONUS, beneficiary=member).exists()
    assert not Commission.objects.filter(kind=CommissionKind.TEAM_BONUS, beneficiary=seller).exists()
    assert selectors.ledger_differences()["transactions"] == []


def test_running_the_month_twice_pays_once(team):
    seller, _member, leader = team
    _sold_last_month(seller, "1200.00")

    tasks.team_bonus_task()
    tasks.team_bonus_task()

    assert Commission.objects.filter(kind=CommissionKind.TEAM_BONUS, beneficiary=leader).count() == 1
    assert JournalTransaction.objects.filter(reference__startswith=f"team-bonus:{leader.pk}:").count() == 1
    assert selectors.wallet(leader)["pending"] == Decimal("50.00")


def test_the_database_refuses_a_second_bonus_for_the_same_leader_and_month(team):
    seller, _member, leader = team
    _sold_last_month(seller, "1200.00")
    run_team_bonuses(month=_last_month())
    first = Commission.objects.get(kind=CommissionKind.TEAM_BONUS, beneficiary=leader)

    first.pk = None
    with pytest.raises(IntegrityError):
        first.save()


def test_a_team_below_the_threshold_earns_nothing(team):
    seller, _member, leader = team
    _sold_last_month(seller, "999.99")

    run_team_bonuses(month=_last_month())

    assert not Commission.objects.filter(kind=CommissionKind.TEAM_BONUS).exists()
    assert selectors.wallet(leader)["pending"] == Decimal("0.00")


def test_refunds_lower_the_team_sales(team):
    seller, _member, leader = team
    order = _sold_last_month(seller, "1200.00")
    refund(order, "300.00")

    run_team_bonuses(month=_last_month())

    assert not Commission.objects.filter(kind=CommissionKind.TEAM_BONUS).exists()


def test_this_months_sales_and_other_teams_do_not_count(team):
    seller, _member, leader = team
    make_order(seller, paid="5000.00")  # paid now, this month
    other_seller, *_rest = make_chain(1)
    _sold_last_month(other_seller, "900.00")

    run_team_bonuses(month=_last_month())

    assert not Commission.objects.filter(kind=CommissionKind.TEAM_BONUS).exists()


def test_the_highest_threshold_reached_decides_and_a_rate_pays_a_share_of_sales(team):
    seller, _member, leader = team
    TeamBonusRule.objects.create(threshold=Decimal("2000.00"), mode="percent", rate_bp=200)
    _sold_last_month(seller, "2500.00")

    run_team_bonuses(month=_last_month())

    bonus = Commission.objects.get(kind=CommissionKind.TEAM_BONUS, beneficiary=leader)
    assert bonus.amount == Decimal("50.00")  # 2% of 2,500
    assert bonus.rate_bp == 200


def test_a_month_not_yet_over_is_refused(team):
    with pytest.raises(ValidationError):
        run_team_bonuses(month=timezone.localdate())


def test_a_rule_above_the_share_cap_is_refused_with_the_reason(admin_user):
    too_rich = TeamBonusRule(threshold=Decimal("1000.00"), fixed_amount=Decimal("500.00"))
    too_high = TeamBonusRule(threshold=Decimal("1000.00"), mode="percent", rate_bp=5000)

    assert "超过" in team_bonus_rule_problems(too_rich)[0]
    assert team_bonus_rule_problems(too_high)
    with pytest.raises(ValidationError):
        save_team_bonus_rule(rule=too_rich, actor=admin_user)
    assert not TeamBonusRule.objects.exists()


def test_the_console_saves_a_rule_and_shows_a_refusal(admin_client):
    url = "/admin/commissions/teambonusrule/add/"
    refused = admin_client.post(
        url, {"threshold": "1000.00", "mode": "fixed", "fixed_amount": "900.00", "rate_bp": "0", "is_active": "on"}
    )
    saved = admin_client.post(
        url, {"threshold": "1000.00", "mode": "fixed", "fixed_amount": "50.00", "rate_bp": "0", "is_active": "on"}
    )

    assert refused.status_code == 200 and "超过" in refused.content.decode()
    assert saved.status_code == 302
    assert TeamBonusRule.objects.get().fixed_amount == Decimal("50.00")


def test_beat_runs_the_team_bonus_on_the_first_of_the_month():
    entry = settings.CELERY_BEAT_SCHEDULE["commissions-team-bonus"]
    assert entry["task"] == "commissions.tasks.team_bonus_task"
    assert entry["schedule"].day_of_month == {1}


@pytest.mark.django_db(transaction=True)
def test_two_runs_at_the_same_moment_pay_once():
    import threading

    from django.db import connection

    seller, _member, leader = make_chain(3)
    TeamBonusRule.objects.create(threshold=Decimal("1000.00"), fixed_amount=Decimal("50.00"))
    _sold_last_month(seller, "1200.00")
    barrier = threading.Barrier(2)
    errors = []

    def run():
        try:
            barrier.wait()
            run_team_bonuses(month=_last_month())
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert Commission.objects.filter(kind=CommissionKind.TEAM_BONUS, beneficiary=leader).count() == 1
    assert selectors.wallet(leader)["pending"] == Decimal("50.00")
    assert selectors.ledger_differences()["accounts"] == []


def test_the_leaders_statement_shows_the_bonus_and_its_month(team, client):
    seller, _member, leader = team
    _sold_last_month(seller, "1200.00")
    run_team_bonuses(month=_last_month())
    client.force_login(leader.user)

    body = client.get("/agent/wallet/statements/").content.decode()

    assert f"团队业绩奖励 {_last_month():%Y-%m}" in body
    assert "达到 ¥1000.00 档" in body and "¥50.00" in body
