"""Joining the network: the inviter becomes the parent; bad codes, self-invitation and a second
join are refused with a clear message and change nothing."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from distribution import services
from distribution.models import (
    AdmissionMode,
    DepositStatus,
    Distributor,
    DistributorStatus,
    DistributorStatusChange,
    Invitation,
)

from .factories import DistributorFactory, GradeFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def default_grade():
    return GradeFactory(
        name="推广员", rank=1, is_default=True, admission_mode=AdmissionMode.AUTOMATIC
    )


@pytest.fixture
def inviter(default_grade):
    return DistributorFactory(grade=GradeFactory(name="总代", rank=4))


def message(raised) -> str:
    return " ".join(" ".join(v) for v in raised.value.message_dict.values())


def test_joining_with_an_invite_code_puts_the_inviter_above_and_activates_an_automatic_grade(
    inviter, default_grade
):
    user = UserFactory()

    joined = services.join_network(
        user=user, code=inviter.invite_code.lower(), region="浙江"
    )

    joined.refresh_from_db()
    assert joined.parent_id == inviter.pk
    assert joined.grade == default_grade
    assert joined.status == DistributorStatus.ACTIVE
    assert joined.joined_at is not None
    assert joined.region == "浙江"
    assert joined.invite_code != inviter.invite_code
    assert list(joined.status_changes.values_list("new_status", flat=True)) == [
        "applied",
        "active",
    ]
    assert services.tree_problems() == []


def test_a_staff_approved_grade_waits_in_the_queue(inviter, default_grade):
    default_grade.admission_mode = AdmissionMode.STAFF
    default_grade.save()

    joined = services.join_network(user=UserFactory(), code=inviter.invite_code)

    assert joined.status == DistributorStatus.APPLIED
    assert joined.joined_at is None


def test_an_invite_link_gives_its_grade_and_counts_its_uses(inviter):
    city = GradeFactory(name="市代", rank=2)
    invitation = services.create_invitation(inviter=inviter, grade=city, max_uses=1)

    joined = services.join_network(user=UserFactory(), code=invitation.code)

    assert joined.grade == city
    invitation.refresh_from_db()
    assert invitation.uses == 1
    with pytest.raises(ValidationError) as raised:
        services.join_network(user=UserFactory(), code=invitation.code)
    assert "使用次数已满" in message(raised)


@pytest.mark.parametrize(
    ("code", "expected"),
    [("", "请填写邀请码"), ("NOPE1234", "不存在"), ("  ", "请填写邀请码")],
)
def test_invalid_invite_codes_are_refused_clearly(inviter, code, expected):
    with pytest.raises(ValidationError) as raised:
        services.join_network(user=UserFactory(), code=code)

    assert expected in message(raised)
    assert Distributor.objects.count() == 1


def test_expired_and_disabled_invite_links_are_refused(inviter):
    expired = Invitation.objects.create(
        code="EXPIRED1",
        inviter=inviter,
        expires_at=timezone.now() - timedelta(minutes=1),
    )
    disabled = Invitation.objects.create(
        code="DISABLED", inviter=inviter, is_active=False
    )

    for invitation, expected in ((expired, "已过期"), (disabled, "已停用")):
        with pytest.raises(ValidationError) as raised:
            services.join_network(user=UserFactory(), code=invitation.code)
        assert expected in message(raised)
    assert Distributor.objects.count() == 1


def test_nobody_can_invite_themselves(inviter):
    with pytest.raises(ValidationError) as raised:
        services.join_network(user=inviter.user, code=inviter.invite_code)

    assert "不能使用自己的邀请码" in message(raised)
    inviter.refresh_from_db()
    assert inviter.parent_id is None


def test_a_distributor_cannot_join_again_to_change_their_parent(inviter, default_grade):
    other = DistributorFactory(grade=GradeFactory(rank=5))
    member = services.join_network(user=UserFactory(), code=inviter.invite_code)

    with pytest.raises(ValidationError) as raised:
        services.join_network(user=member.user, code=other.invite_code)

    assert "不能重复加入" in message(raised)
    member.refresh_from_db()
    assert member.parent_id == inviter.pk


def test_an_invitation_cannot_give_a_grade_above_the_inviter(inviter):
    higher = GradeFactory(name="超级", rank=99)

    with pytest.raises(ValidationError) as raised:
        services.create_invitation(inviter=inviter, grade=higher)

    assert "不能高于" in message(raised)


def test_a_grade_that_may_not_recruit_and_a_frozen_inviter_invite_nobody(default_grade):
    quiet = DistributorFactory(grade=GradeFactory(may_recruit=False))
    frozen = DistributorFactory(status=DistributorStatus.FROZEN)

    for inviter, expected in ((quiet, "不能发展下级"), (frozen, "不能邀请新成员")):
        with pytest.raises(ValidationError) as raised:
            services.join_network(user=UserFactory(), code=inviter.invite_code)
        assert expected in message(raised)


def test_a_deposit_must_be_held_in_full_in_the_ledger_before_approval(
    inviter, default_grade, owner_user
):
    default_grade.deposit_amount = Decimal("500.00")
    default_grade.save()
    applicant = services.join_network(user=UserFactory(), code=inviter.invite_code)
    assert applicant.status == DistributorStatus.APPLIED
    assert applicant.deposit_status == DepositStatus.PENDING

    with pytest.raises(ValidationError) as raised:
        services.approve_distributor(distributor=applicant, actor=owner_user)
    assert "可退保证金 ¥500.00" in " ".join(raised.value.messages)
    services.record_deposit_held(distributor_id=applicant.pk, held=Decimal("499.99"))
    with pytest.raises(ValidationError):
        services.approve_distributor(distributor=applicant, actor=owner_user)

    services.record_deposit_held(distributor_id=applicant.pk, held=Decimal("500.00"))
    approved = services.approve_distributor(distributor=applicant, actor=owner_user)
    assert approved.status == DistributorStatus.ACTIVE
    assert approved.deposit_status == DepositStatus.HELD


def test_rejection_needs_a_reason_and_the_applicant_may_apply_again(
    inviter, default_grade, owner_user
):
    default_grade.admission_mode = AdmissionMode.STAFF
    default_grade.save()
    applicant = services.join_network(user=UserFactory(), code=inviter.invite_code)

    with pytest.raises(ValidationError):
        services.reject_distributor(distributor=applicant, actor=owner_user, reason=" ")
    rejected = services.reject_distributor(
        distributor=applicant, actor=owner_user, reason="资料不全"
    )
    assert rejected.status == DistributorStatus.REJECTED

    other = DistributorFactory(grade=GradeFactory(rank=6))
    again = services.join_network(user=applicant.user, code=other.invite_code)
    assert again.pk == applicant.pk
    assert again.status == DistributorStatus.APPLIED
    assert again.parent_id == other.pk
    assert services.tree_problems() == []
    assert (
        DistributorStatusChange.objects.filter(
            distributor=applicant, new_status="rejected"
        ).count()
        == 1
    )


def test_register_and_join_creates_the_account_and_membership_together(inviter):
    joined = services.register_and_join(
        username="newagent",
        password="a-Long-pass-2026",
        code=inviter.invite_code,
        phone="13900000000",
    )

    assert joined.user.username == "newagent"
    assert joined.user.check_password("a-Long-pass-2026")
    assert joined.parent_id == inviter.pk


def test_register_and_join_with_a_bad_code_creates_no_account(
    inviter, django_user_model
):
    before = django_user_model.objects.count()

    with pytest.raises(ValidationError):
        services.register_and_join(
            username="newagent", password="a-Long-pass-2026", code="BADCODE9"
        )

    assert django_user_model.objects.count() == before
