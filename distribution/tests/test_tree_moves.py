"""Staff moves and status changes: audited, no cycles, a distributor never moves themselves;
tree reads answer in one query each."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from distribution import selectors, services
from distribution.models import Distributor, DistributorStatus
from kamen.models import AuditLogEntry

from .factories import DistributorFactory, GradeFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def chain():
    """root → a → b → c → d, and a second root."""
    grade = GradeFactory()
    root = DistributorFactory(grade=grade)
    nodes = [root]
    for _ in range(4):
        nodes.append(
            DistributorFactory(
                grade=grade, parent=Distributor.objects.get(pk=nodes[-1].pk)
            )
        )
    other = DistributorFactory(grade=grade)
    return [
        Distributor.objects.get(pk=node.pk) for node in nodes
    ], Distributor.objects.get(pk=other.pk)


def test_moving_a_subtree_takes_its_team_along_and_is_audited(chain, owner_user):
    (root, a, b, c, d), other = chain

    moved = services.move_subtree(
        distributor=b, new_parent=other, actor=owner_user, reason="区域调整"
    )

    assert moved.parent_id == other.pk
    d = Distributor.objects.get(pk=d.pk)
    assert [row.pk for row in selectors.ancestors(d)] == [
        c.pk,
        b.pk,
        other.pk,
    ]
    assert services.tree_problems() == []
    entry = AuditLogEntry.objects.get(action="distribution.distributor.move")
    assert entry.actor == owner_user
    assert entry.changes["reason"] == [None, "区域调整"]
    assert entry.changes["team_size"] == [None, 2]


@pytest.mark.parametrize("target_index", [2, 3, 4])
def test_a_move_under_itself_or_its_own_team_is_refused(
    chain, owner_user, target_index
):
    nodes, _other = chain

    with pytest.raises(ValidationError) as raised:
        services.move_subtree(
            distributor=nodes[2],
            new_parent=nodes[target_index],
            actor=owner_user,
            reason="x",
        )

    assert "会形成循环" in " ".join(raised.value.message_dict["parent"])
    assert Distributor.objects.get(pk=nodes[2].pk).parent_id == nodes[1].pk
    assert services.tree_problems() == []


def test_a_distributor_cannot_change_their_own_parent(chain):
    (root, a, b, c, d), other = chain
    b.user.is_staff = True
    b.user.is_superuser = True
    b.user.save()

    with pytest.raises(PermissionDenied):
        services.move_subtree(
            distributor=b, new_parent=other, actor=b.user, reason="我想换上级"
        )

    assert Distributor.objects.get(pk=b.pk).parent_id == a.pk


def test_moving_needs_the_permission_and_a_reason(chain, django_user_model, owner_user):
    (root, a, b, c, d), other = chain
    clerk = django_user_model.objects.create_user(
        username="clerk", password="x", is_staff=True
    )

    with pytest.raises(PermissionDenied):
        services.move_subtree(distributor=b, new_parent=other, actor=clerk, reason="x")
    with pytest.raises(ValidationError):
        services.move_subtree(
            distributor=b, new_parent=other, actor=owner_user, reason=""
        )


def test_moving_to_the_top_makes_a_new_tree(chain, owner_user):
    (root, a, b, c, d), _other = chain

    moved = services.move_subtree(
        distributor=c, new_parent=None, actor=owner_user, reason="独立"
    )

    assert moved.is_root_node()
    assert selectors.team_counts(moved)["members"] == 1
    assert services.tree_problems() == []


def test_clearing_a_distributor_lifts_their_team_to_the_parent(chain, owner_user):
    (root, a, b, c, d), _other = chain

    cleared = services.change_distributor_status(
        distributor=b,
        new_status=DistributorStatus.CLEARED,
        actor=owner_user,
        reason="长期无销售",
    )

    assert cleared.status == DistributorStatus.CLEARED
    assert cleared.is_leaf_node()
    assert Distributor.objects.get(pk=c.pk).parent_id == a.pk
    assert services.tree_problems() == []


def test_freeze_and_unfreeze_follow_the_transition_table(chain, owner_user):
    (root, a, b, c, d), _other = chain

    services.change_distributor_status(
        distributor=b,
        new_status=DistributorStatus.FROZEN,
        actor=owner_user,
        reason="违规",
    )
    services.change_distributor_status(
        distributor=b,
        new_status=DistributorStatus.ACTIVE,
        actor=owner_user,
        reason="申诉通过",
    )
    services.change_distributor_status(
        distributor=b,
        new_status=DistributorStatus.CLEARED,
        actor=owner_user,
        reason="清退",
    )

    with pytest.raises(ValidationError) as raised:
        services.change_distributor_status(
            distributor=b,
            new_status=DistributorStatus.ACTIVE,
            actor=owner_user,
            reason="x",
        )
    assert "不能从“已清退”变为“正常”" in " ".join(raised.value.messages)
    assert [
        row.new_status for row in Distributor.objects.get(pk=b.pk).status_changes.all()
    ] == ["frozen", "active", "cleared"]


def test_ancestors_subtree_and_team_counts_take_one_query_each(
    chain, django_assert_num_queries
):
    (root, a, b, c, d), _other = chain

    with django_assert_num_queries(1):
        assert [row.pk for row in selectors.ancestors(d, depth=3)] == [
            c.pk,
            b.pk,
            a.pk,
        ]
    with django_assert_num_queries(1):
        counts = selectors.team_counts(a)
    assert counts["members"] == 3
    assert counts["direct"] == 1
    with django_assert_num_queries(1):
        assert selectors.team_sales(a)["orders"] == 0
    assert selectors.team_stats(a)["depth"] == 3
