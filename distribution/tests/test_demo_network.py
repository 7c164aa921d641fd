from decimal import Decimal

import pytest
from django.core.management import call_command

from commissions.models import Commission
from commissions.selectors import ledger_differences
from distribution.models import Distributor, DistributorStatus


@pytest.mark.django_db
def test_the_demo_network_has_portal_logins_and_real_commissions_and_loads_twice_without_duplicates():
    call_command("load_demo_data", stdout=open("/dev/null", "w"))
    call_command("load_demo_data", stdout=open("/dev/null", "w"))

    agents = Distributor.objects.filter(user__username__startswith="agent_")
    assert agents.count() == 4
    assert set(agents.values_list("status", flat=True)) == {DistributorStatus.ACTIVE}
    promoter = agents.get(user__username="agent_tui")
    assert promoter.level == 3  # 总代 → 省代 → 市代 → 推广员
    # two demo sales through the promoter's link, each paying three levels once
    assert Commission.objects.filter(level=1, beneficiary=promoter).count() == 2
    assert Commission.objects.filter(level__in=[1, 2, 3]).count() == 6
    assert Commission.objects.filter(amount__lte=Decimal("0")).count() == 0
    assert ledger_differences()["accounts"] == [] and ledger_differences()["transactions"] == []


@pytest.mark.django_db
def test_a_demo_agent_can_open_the_portal(client):
    call_command("load_demo_data", stdout=open("/dev/null", "w"))

    assert client.login(username="agent_tui", password="kamen-demo-2026")
    response = client.get("/agent/")

    assert response.status_code == 200
    assert "演示推广员" in response.content.decode() or "agent_tui" in response.content.decode()
