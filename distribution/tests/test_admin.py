"""Merchant side: the tree browser with subtree figures, search, the approval queue, moves and
status changes through the services."""

from decimal import Decimal

import pytest
from django.urls import reverse

from distribution import services
from distribution.models import AdmissionMode, Distributor, DistributorStatus
from kamen.models import AuditLogEntry

from .factories import DistributorFactory, GradeFactory, UserFactory
from .test_portal import make_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def tree():
    grade = GradeFactory()
    root = DistributorFactory(
        grade=grade, user=UserFactory(display_name="总代老张", phone="13711112222")
    )
    child = DistributorFactory(grade=grade, parent=Distributor.objects.get(pk=root.pk))
    grandchild = DistributorFactory(
        grade=grade, parent=Distributor.objects.get(pk=child.pk)
    )
    other = DistributorFactory(grade=grade)
    return {
        name: Distributor.objects.get(pk=node.pk)
        for name, node in {
            "root": root,
            "child": child,
            "grandchild": grandchild,
            "other": other,
        }.items()
    }


def test_the_tree_browser_shows_team_figures(client, owner_user, tree):
    make_order(tree["grandchild"], amount="30.00")
    make_order(tree["root"], amount="12.00")
    client.force_login(owner_user)

    response = client.get(reverse("admin:distribution_distributor_changelist"))

    assert response.status_code == 200
    rows = {row.pk: row for row in response.context["cl"].result_list}
    assert rows[tree["root"].pk].headcount == 2
    assert rows[tree["root"].pk].team_depth == 2
    assert rows[tree["root"].pk].team_gmv == Decimal("42.00")
    assert rows[tree["child"].pk].team_gmv == Decimal("30.00")


@pytest.mark.parametrize("term", ["老张", "13711112222"])
def test_the_browser_searches_by_name_phone_and_code(client, owner_user, tree, term):
    client.force_login(owner_user)

    response = client.get(
        reverse("admin:distribution_distributor_changelist"), {"q": term}
    )

    assert [row.pk for row in response.context["cl"].result_list] == [tree["root"].pk]


def test_staff_move_a_subtree_from_the_manage_page(client, staff_user, tree):
    client.force_login(staff_user)
    url = reverse("admin:distribution_distributor_manage", args=[tree["child"].pk])

    response = client.post(
        url,
        {
            "action": "move",
            "new_parent_code": tree["other"].invite_code,
            "reason": "团队调整",
        },
    )

    assert response.status_code == 302
    assert Distributor.objects.get(pk=tree["child"].pk).parent_id == tree["other"].pk
    assert AuditLogEntry.objects.filter(
        action="distribution.distributor.move", actor=staff_user
    ).exists()


def test_a_cyclic_move_from_the_manage_page_is_refused_clearly(
    client, staff_user, tree
):
    client.force_login(staff_user)
    url = reverse("admin:distribution_distributor_manage", args=[tree["root"].pk])

    response = client.post(
        url,
        {
            "action": "move",
            "new_parent_code": tree["grandchild"].invite_code,
            "reason": "x",
        },
        follow=True,
    )

    assert "会形成循环" in response.content.decode()
    assert Distributor.objects.get(pk=tree["root"].pk).parent_id is None


def test_staff_freeze_from_the_manage_page(client, staff_user, tree):
    client.force_login(staff_user)

    client.post(
        reverse("admin:distribution_distributor_manage", args=[tree["child"].pk]),
        {"action": "frozen", "reason": "违规宣传"},
    )

    assert (
        Distributor.objects.get(pk=tree["child"].pk).status == DistributorStatus.FROZEN
    )


def test_the_approval_queue_lists_applicants_and_approves(client, staff_user, tree):
    GradeFactory(
        name="推广员", rank=1, is_default=True, admission_mode=AdmissionMode.STAFF
    )
    applicant = services.join_network(user=UserFactory(), code=tree["root"].invite_code)
    client.force_login(staff_user)

    response = client.get(
        reverse("admin:distribution_distributorapplication_changelist")
    )
    assert [row.pk for row in response.context["cl"].result_list] == [applicant.pk]

    client.post(
        reverse("admin:distribution_distributor_manage", args=[applicant.pk]),
        {"action": "approve"},
    )
    assert Distributor.objects.get(pk=applicant.pk).status == DistributorStatus.ACTIVE


def test_finance_sees_the_network_but_cannot_move_it(client, django_user_model, tree):
    from django.contrib.auth.models import Group

    finance = django_user_model.objects.create_user(
        username="fin", password="x", is_staff=True
    )
    finance.groups.add(Group.objects.get(name="finance"))
    client.force_login(finance)

    assert (
        client.get(reverse("admin:distribution_distributor_changelist")).status_code
        == 200
    )
    client.post(
        reverse("admin:distribution_distributor_manage", args=[tree["child"].pk]),
        {"action": "move", "new_parent_code": "", "reason": "x"},
    )
    assert Distributor.objects.get(pk=tree["child"].pk).parent_id == tree["root"].pk


def test_the_grade_and_settings_pages_render(client, owner_user, tree):
    client.force_login(owner_user)

    assert (
        client.get(
            reverse("admin:distribution_grade_change", args=[tree["root"].grade_id])
        ).status_code
        == 200
    )
    response = client.post(
        reverse("admin:distribution_distributionsettings_change", args=[1]),
        {"commission_depth": 4, "inactivity_days": 90},
    )
    assert "法律上限为 3 级" in response.content.decode()


def test_the_browser_filters_by_segment(client, owner_user, tree):
    Distributor.objects.filter(pk=tree["other"].pk).update(tags=["躺平型"])
    client.force_login(owner_user)

    response = client.get(
        reverse("admin:distribution_distributor_changelist"), {"segment": "躺平型"}
    )

    assert [row.pk for row in response.context["cl"].result_list] == [tree["other"].pk]


def test_the_appeal_queue_accepts_through_the_service(client, staff_user, tree):
    from distribution.models import Appeal, AppealStatus
    from distribution.services.lifecycle import submit_appeal

    Distributor.objects.filter(pk=tree["other"].pk).update(
        status=DistributorStatus.FROZEN
    )
    appeal = submit_appeal(
        distributor=Distributor.objects.get(pk=tree["other"].pk), reason="请解冻"
    )
    client.force_login(staff_user)

    assert (
        client.get(reverse("admin:distribution_appeal_changelist")).status_code == 200
    )
    client.post(
        reverse("admin:distribution_appeal_changelist"),
        {"action": "accept_selected", "_selected_action": [appeal.pk]},
    )

    assert Appeal.objects.get(pk=appeal.pk).status == AppealStatus.ACCEPTED
    assert (
        Distributor.objects.get(pk=tree["other"].pk).status == DistributorStatus.ACTIVE
    )
