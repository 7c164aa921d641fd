"""Monthly tax statements (issue 18 §3): a printable page per distributor and month in the
portal and the console, and the month's withholding as CSV for filing (finance only)."""

import csv
import io
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from commissions.models import AccountKind, TransactionKind
from commissions.services import add_payout_account, request_withdrawal
from commissions.services.ledger import credit, debit, distributor_account, merchant_account, post_journal_transaction
from commissions.services.tax_filing import parse_month
from kamen.models import AuditLogEntry
from riskcontrol.kyc import submit_real_name

from .factories import UserFactory, make_chain

ID_NUMBER = "11010519491231002X"


def _agent_with_withdrawals(*amounts, id_number=ID_NUMBER):
    agent, *_rest = make_chain(1)
    agent.grade.withdrawal_min_amount = Decimal("1.00")
    agent.grade.withdrawal_daily_max_amount = Decimal("100000.00")
    agent.grade.save()
    post_journal_transaction(
        kind=TransactionKind.SETTLEMENT,
        reference=f"fund:{agent.pk}",
        lines=[
            debit(merchant_account(AccountKind.MERCHANT_REVENUE), Decimal("100000.00")),
            credit(distributor_account(agent.pk, AccountKind.DISTRIBUTOR_AVAILABLE), Decimal("100000.00")),
        ],
    )
    submit_real_name(
        distributor=agent, name="张三", id_number=id_number, bank_card="6222021234567890128", mobile="13812345678"
    )
    account = add_payout_account(distributor=agent, method="alipay", holder_name="张三", account="13800138000")
    made = [
        request_withdrawal(distributor=agent, payout_account=account, amount=amount, token=f"t{agent.pk}-{index}")
        for index, amount in enumerate(amounts)
    ]
    return agent, made


def _staff(role):
    user = UserFactory(is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return user, client


@pytest.mark.django_db
def test_the_distributor_prints_their_months_statement_with_every_withdrawal_and_the_tax():
    agent, made = _agent_with_withdrawals("3000.00", "2000.00")  # 5,000 → 5,000 × 80 % × 20 % = 800
    client = Client()
    client.force_login(agent.user)
    today = timezone.localdate()

    listing = client.get("/agent/wallet/tax/").content.decode()
    page = client.get(f"/agent/wallet/tax/{today.year}/{today.month}/")

    assert f"/agent/wallet/tax/{today.year}/{today.month}/" in listing
    text = page.content.decode()
    assert page.status_code == 200
    assert all(withdrawal.payout_no in text for withdrawal in made)
    assert "¥5000.00" in text and "¥800.00" in text  # income and the month's tax
    assert "@media print" in text and "data-print" in text
    assert ID_NUMBER not in text
    assert "110***********002X" in text  # the mask, never the number


@pytest.mark.django_db
def test_a_month_without_withdrawals_or_a_bad_month_is_not_found():
    agent, _made = _agent_with_withdrawals("100.00")
    client = Client()
    client.force_login(agent.user)
    assert client.get("/agent/wallet/tax/2001/1/").status_code == 404
    assert client.get("/agent/wallet/tax/2026/13/").status_code == 404


@pytest.mark.django_db
def test_finance_opens_any_distributors_statement_in_the_console():
    agent, made = _agent_with_withdrawals("1000.00")
    today = timezone.localdate()
    _user, finance = _staff("finance")
    _user, operator = _staff("operator")
    url = f"/admin/commissions/withdrawal/tax-certificate/{agent.pk}/{today.year}/{today.month}/"

    page = finance.get(url)

    assert page.status_code == 200 and made[0].payout_no in page.content.decode()
    assert operator.get(url).status_code == 403


@pytest.mark.django_db
def test_the_withholding_csv_lists_each_distributor_with_name_id_number_income_and_tax():
    first, _made = _agent_with_withdrawals("3000.00", "2000.00")
    second, _made = _agent_with_withdrawals("700.00", id_number="110105198001010016")
    user, finance = _staff("finance")
    month = timezone.localdate().strftime("%Y-%m")

    response = finance.get(f"/admin/commissions/withdrawal/withholding-export/?month={month}")

    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][:5] == ["月份", "分销商ID", "姓名", "证件类型", "证件号码"]
    by_distributor = {row[1]: row for row in rows[1:]}
    assert by_distributor[str(first.pk)][2:9] == [
        "张三",
        "居民身份证",
        ID_NUMBER,
        "劳务报酬所得",
        "5000.00",
        "800.00",
        "2",
    ]
    assert by_distributor[str(second.pk)][6:8] == ["700.00", "0.00"]
    entry = AuditLogEntry.objects.get(action="commissions.withholding_exported")
    assert entry.actor == user and entry.changes["month"] == [None, month]


@pytest.mark.django_db
def test_the_withholding_export_refuses_a_bad_month_and_roles_without_the_permission():
    _user, finance = _staff("finance")
    _user, risk = _staff("risk")

    bad = finance.get("/admin/commissions/withdrawal/withholding-export/?month=2026-13")

    assert bad.status_code == 400 and "YYYY-MM" in bad.content.decode()
    assert risk.get("/admin/commissions/withdrawal/withholding-export/?month=2026-11").status_code == 403
    assert not AuditLogEntry.objects.filter(action="commissions.withholding_exported").exists()


@pytest.mark.parametrize("raw", ["", "2026", "2026-1", "26-11", "2026-00", "２０２６-１１", "2026-11-01"])
def test_months_are_read_only_in_the_form_yyyy_mm(raw):
    with pytest.raises(ValidationError):
        parse_month(raw)
