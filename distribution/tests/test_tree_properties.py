"""Property: any sequence of joins, moves and clear-outs through the services leaves the
nested-set index consistent with the parent column and equal to a rebuild from it."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distribution import services
from distribution.models import AdmissionMode, Distributor, DistributorStatus, Grade

from .factories import DistributorFactory, GradeFactory, UserFactory

operations = st.lists(
    st.tuples(
        st.sampled_from(["join", "move", "move_to_top", "clear"]),
        st.integers(0, 10_000),
        st.integers(0, 10_000),
    ),
    min_size=1,
    max_size=25,
)


@pytest.mark.django_db
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=operations)
def test_random_joins_and_moves_keep_the_tree_consistent(owner_user, steps):
    # Examples share the test's transaction: the default grade is made once, trees accumulate.
    if not Grade.objects.filter(is_default=True).exists():
        GradeFactory(is_default=True, rank=1, admission_mode=AdmissionMode.AUTOMATIC)
    grade = GradeFactory()
    DistributorFactory(grade=grade)
    for kind, first, second in steps:
        active = list(
            Distributor.objects.filter(status=DistributorStatus.ACTIVE).order_by("pk")
        )
        node = active[first % len(active)]
        if kind == "join":
            try:
                services.join_network(user=UserFactory(), code=node.invite_code)
            except (
                ValidationError,
                PermissionDenied,
            ):  # a refused join must leave the tree intact too
                pass
        elif kind in ("move", "move_to_top"):
            target = None if kind == "move_to_top" else active[second % len(active)]
            try:
                services.move_subtree(
                    distributor=node,
                    new_parent=target,
                    actor=owner_user,
                    reason="property",
                )
            except ValidationError:  # cycles and inactive targets are refused
                pass
        elif len(active) > 1:
            services.change_distributor_status(
                distributor=node,
                new_status=DistributorStatus.CLEARED,
                actor=owner_user,
                reason="property",
            )

    assert services.tree_problems() == []
    before = services.tree.nesting_snapshot()
    services.repair_tree()
    assert services.tree.nesting_snapshot() == before


@pytest.mark.django_db
def test_the_consistency_check_notices_a_damaged_index():
    root = DistributorFactory()
    DistributorFactory(parent=Distributor.objects.get(pk=root.pk), grade=root.grade)
    Distributor.objects.filter(pk=root.pk).update(rght=99)

    assert services.tree_problems() != []
    services.repair_tree()
    assert services.tree_problems() == []


@pytest.mark.django_db
def test_the_repair_command_reports_and_fixes_a_damaged_index():
    from io import StringIO

    from django.core.management import call_command

    root = DistributorFactory()
    DistributorFactory(parent=Distributor.objects.get(pk=root.pk), grade=root.grade)
    Distributor.objects.filter(pk=root.pk).update(rght=99)
    output = StringIO()

    with pytest.raises(SystemExit):
        call_command("repair_distributor_tree", stdout=output)
    call_command("repair_distributor_tree", "--fix", stdout=output)

    assert "rebuilt from the parent column" in output.getvalue()
    assert services.tree_problems() == []
