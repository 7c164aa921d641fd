"""The four-eyes rule, swept over every review action: a staff member who is also in the
distributor network (the merchant allowed it) is refused every decision about their own money
or case — with a clear message and nothing changed — while a colleague may take it.

``REVIEW_ACTIONS`` below has one case per review service; ``test_every_review_service_is_swept``
walks the services for every function that acts for a person (``actor``) and fails when one is
neither swept here nor listed as not being a decision about someone (``NOT_A_REVIEW``).
"""

import importlib
import inspect
import pkgutil

import pytest
from django.urls import reverse

import riskcontrol.selectors
from catalog.models import ProductType
from commissions.models import JournalTransaction, WalletHold, Withdrawal, WithdrawalStatus
from commissions.services import (
    add_payout_account,
    approve_withdrawal,
    freeze_commissions,
    reject_withdrawal,
    release_commissions,
    request_withdrawal,
)
from commissions.services.prepaid import top_up_prepaid
from commissions.tests.factories import DistributorFactory, make_order
from commissions.tests.test_withdrawals import _fund
from distribution.docking.models import DockingSite
from distribution.docking.services import apply_for_docking, approve_docking_site, suspend_docking_site
from distribution.models import Appeal, DistributionSettings, Distributor, DistributorStatus, Grade
from distribution.services import (
    approve_distributor,
    change_distributor_status,
    create_root_distributor,
    move_subtree,
    reject_distributor,
)
from distribution.services.lifecycle import decide_appeal
from kamen.four_eyes import OwnCaseRefused
from kamen.models import AuditLogEntry
from kamen.roles import OWNER
from kamen.tests.factories import StaffFactory
from orders.api.models import ApiRefundRequest, DockingOrder
from orders.api.services import approve_refund_request, reject_refund_request
from orders.models import Order, OrderDelivery, OrderStatus, PaymentCallback, Refund
from orders.services import confirm_payment_manually, deliver_manually, enqueue, refund_order
from orders.services.review import reject_held_order, release_held_order
from orders.tests import postsale_helpers
from riskcontrol.models import BlacklistEntry, ReviewCase
from riskcontrol.services.blacklist import add_to_blacklist, remove_from_blacklist
from riskcontrol.services.cases import decide_review_case, open_review_case

pytestmark = pytest.mark.django_db


def _owner(django_user_model, username):
    return StaffFactory(username=username, roles=[OWNER])


@pytest.fixture
def world(django_user_model, monkeypatch):
    """A staff member ("me") who joined the network as the merchant allowed, with a downline
    member who sells; a colleague with the same permissions."""
    DistributionSettings.objects.update_or_create(pk=1, defaults={"staff_may_join": True})
    monkeypatch.setattr(enqueue, "run_task_now_or_enqueue", lambda name, **kwargs: None)
    monkeypatch.setattr(riskcontrol.selectors, "is_real_name_verified", lambda *, distributor: True)
    me, colleague = _owner(django_user_model, "finance-me"), _owner(django_user_model, "colleague")
    root = DistributorFactory()
    mine = DistributorFactory(user=me, parent=root, grade=root.grade)
    seller = DistributorFactory(parent=mine, grade=root.grade)
    return type("World", (), {"me": me, "colleague": colleague, "root": root, "mine": mine, "seller": seller})


def _my_withdrawal(w):
    _fund(w.mine, "500.00")
    account = add_payout_account(distributor=w.mine, method="alipay", holder_name="本人", account="13800138000")
    return request_withdrawal(distributor=w.mine, payout_account=account, amount="300.00", token="own")


def _held_order_i_earn_from(w):
    """A paid order sold by my downline (my commission), held for risk review."""
    order = postsale_helpers.make_order(status=OrderStatus.PAID)
    Order.objects.filter(pk=order.pk).update(
        distributor_id=w.seller.pk,
        payment_gateway="manual",
        attribution={"risk": "review", "distributor_id": w.seller.pk, "chain": [w.mine.pk, w.root.pk]},
    )
    order.refresh_from_db()
    open_review_case(order=order)
    return order


def _set_status(distributor, status):
    Distributor.objects.filter(pk=distributor.pk).update(status=status)
    distributor.refresh_from_db()


# Each case: given the world, the review action as a function of who takes it.
def case_approve_withdrawal(w):
    withdrawal = _my_withdrawal(w)
    return lambda actor: approve_withdrawal(withdrawal=withdrawal, actor=actor)


def case_reject_withdrawal(w):
    withdrawal = _my_withdrawal(w)
    return lambda actor: reject_withdrawal(withdrawal=withdrawal, actor=actor, reason="驳回")


def case_freeze_commissions(w):
    return lambda actor: freeze_commissions(distributor=w.mine, reason="风控", actor=actor)


def case_release_commissions(w):
    freeze_commissions(distributor=w.mine, reason="风控", actor=w.colleague)
    return lambda actor: release_commissions(distributor=w.mine, actor=actor)


def case_approve_distributor(w):
    _set_status(w.mine, DistributorStatus.APPLIED)
    return lambda actor: approve_distributor(distributor=w.mine, actor=actor)


def case_reject_distributor(w):
    _set_status(w.mine, DistributorStatus.APPLIED)
    return lambda actor: reject_distributor(distributor=w.mine, actor=actor, reason="不符合")


def case_change_distributor_status(w):
    return lambda actor: change_distributor_status(
        distributor=w.mine, new_status=DistributorStatus.FROZEN, actor=actor, reason="冻结"
    )


def case_move_a_team_under_me(w):
    other = DistributorFactory(parent=w.root, grade=w.root.grade)
    return lambda actor: move_subtree(distributor=other, new_parent=w.mine, actor=actor, reason="调整")


def case_decide_my_appeal(w):
    _set_status(w.mine, DistributorStatus.FROZEN)
    appeal = Appeal.objects.create(distributor=w.mine, reason="请解冻")
    return lambda actor: decide_appeal(appeal=appeal, accept=True, actor=actor, note="通过")


def case_release_held_order(w):
    order = _held_order_i_earn_from(w)
    return lambda actor: release_held_order(order=order, actor=actor, reason="核实")


def case_decide_a_review_case_i_earn_from(w):
    order = _held_order_i_earn_from(w)
    return lambda actor: decide_review_case(order=order, status="approved", actor=actor, reason="核实")


def case_reject_held_order(w):
    order = _held_order_i_earn_from(w)
    return lambda actor: reject_held_order(order=order, actor=actor, reason="盗刷")


def case_confirm_payment_of_an_order_i_bought(w):
    order = postsale_helpers.make_order(status=OrderStatus.PENDING_PAYMENT, contact=w.me.email)
    return lambda actor: confirm_payment_manually(order=order, actor=actor, reason="我付过了")


def case_refund_an_order_i_bought_as_a_distributor(w):
    order = make_order(w.seller, attribution={"distributor_id": w.seller.pk, "buyer_distributor_id": w.mine.pk})
    Order.objects.filter(pk=order.pk).update(payment_gateway="manual")
    return lambda actor: refund_order(order=order, amount="10.00", reason="退款", actor=actor)


def case_deliver_an_order_i_sold(w):
    product = postsale_helpers.make_product(product_type=ProductType.MANUAL)
    order = postsale_helpers.make_order(product=product, status=OrderStatus.FULFILLING)
    Order.objects.filter(pk=order.pk).update(distributor_id=w.mine.pk, attribution={"distributor_id": w.mine.pk})
    order.refresh_from_db()
    return lambda actor: deliver_manually(order=order, content="激活码 123", actor=actor)


def case_remove_me_from_the_blacklist(w):
    entry = add_to_blacklist(kind="distributor", value=str(w.mine.pk), reason="刷单", actor=w.colleague)
    return lambda actor: remove_from_blacklist(entry=entry, actor=actor)


def _my_docking_site(w, approved=False):
    site = apply_for_docking(distributor=w.mine, name="我的对接站", contact_email="me@example.com")
    if approved:
        approve_docking_site(site=site, actor=w.colleague)
    return site


def case_approve_my_docking_site(w):
    site = _my_docking_site(w)
    return lambda actor: approve_docking_site(site=site, actor=actor, credit_limit="5000")


def case_suspend_my_docking_site(w):
    site = _my_docking_site(w, approved=True)
    return lambda actor: suspend_docking_site(site=site, actor=actor, reason="暂停")


def case_top_up_my_prepaid_balance(w):
    _my_docking_site(w, approved=True)
    return lambda actor: top_up_prepaid(distributor_id=w.mine.pk, amount="1000.00", reference="own", actor=actor)


def _refund_request_of_my_site(w):
    site = _my_docking_site(w, approved=True)
    order = postsale_helpers.make_order(status=OrderStatus.COMPLETED)
    docking_order = DockingOrder.objects.create(
        site=site, order=order, client_order_no="C-1", request_fingerprint="f" * 64
    )
    return ApiRefundRequest.objects.create(docking_order=docking_order, reason="不想要了")


def case_approve_my_sites_refund_request(w):
    refund_request = _refund_request_of_my_site(w)
    Order.objects.filter(pk=refund_request.docking_order.order_id).update(payment_gateway="prepaid")
    return lambda actor: approve_refund_request(refund_request=refund_request, actor=actor)


def case_reject_my_sites_refund_request(w):
    refund_request = _refund_request_of_my_site(w)
    return lambda actor: reject_refund_request(refund_request=refund_request, actor=actor)


def case_make_myself_a_root_distributor(w):
    Distributor.objects.filter(pk__in=[w.seller.pk]).update(parent=None)
    Distributor.objects.filter(pk=w.mine.pk).delete()
    return lambda actor: create_root_distributor(user=w.me, grade=w.root.grade, actor=actor)


def _my_deposit_refund(w):
    from commissions.services import hold_deposit, request_deposit_refund

    Distributor.objects.filter(pk=w.mine.pk).update(deposit_amount=500, deposit_status="pending")
    hold_deposit(distributor_id=w.mine.pk, amount="500.00", reference="D-mine")
    account = add_payout_account(distributor=w.mine, method="alipay", holder_name="我", account="13800138009")
    return request_deposit_refund(distributor=w.mine, payout_account=account, token="mine")


def case_approve_my_deposit_refund(w):
    from commissions.services import approve_deposit_refund

    refund = _my_deposit_refund(w)
    return lambda actor: approve_deposit_refund(refund=refund, actor=actor)


def case_reject_my_deposit_refund(w):
    from commissions.services import reject_deposit_refund

    refund = _my_deposit_refund(w)
    return lambda actor: reject_deposit_refund(refund=refund, actor=actor, reason="驳回")


def case_take_me_out_of_the_network(w):
    from distribution.services import leave_network

    return lambda actor: leave_network(distributor=w.mine, actor=actor, reason="退出")


REVIEW_ACTIONS = {
    "commissions.services.deposits.approve_deposit_refund": case_approve_my_deposit_refund,
    "commissions.services.deposits.reject_deposit_refund": case_reject_my_deposit_refund,
    "distribution.services.tree.leave_network": case_take_me_out_of_the_network,
    "distribution.docking.services.approve_docking_site": case_approve_my_docking_site,
    "distribution.docking.services.suspend_docking_site": case_suspend_my_docking_site,
    "commissions.services.prepaid.top_up_prepaid": case_top_up_my_prepaid_balance,
    "orders.api.services.approve_refund_request": case_approve_my_sites_refund_request,
    "orders.api.services.reject_refund_request": case_reject_my_sites_refund_request,
    "commissions.services.withdrawals.approve_withdrawal": case_approve_withdrawal,
    "commissions.services.withdrawals.reject_withdrawal": case_reject_withdrawal,
    "commissions.services.lifecycle.freeze_commissions": case_freeze_commissions,
    "commissions.services.lifecycle.release_commissions": case_release_commissions,
    "distribution.services.tree.approve_distributor": case_approve_distributor,
    "distribution.services.tree.reject_distributor": case_reject_distributor,
    "distribution.services.tree.change_distributor_status": case_change_distributor_status,
    "distribution.services.tree.move_subtree": case_move_a_team_under_me,
    "distribution.services.tree.create_root_distributor": case_make_myself_a_root_distributor,
    "distribution.services.lifecycle.decide_appeal": case_decide_my_appeal,
    "orders.services.review.release_held_order": case_release_held_order,
    "orders.services.review.reject_held_order": case_reject_held_order,
    "riskcontrol.services.cases.decide_review_case": case_decide_a_review_case_i_earn_from,
    "orders.services.payments.confirm_payment_manually": case_confirm_payment_of_an_order_i_bought,
    "orders.services.refunds.refund_order": case_refund_an_order_i_bought_as_a_distributor,
    "orders.services.fulfilment.deliver_manually": case_deliver_an_order_i_sold,
    "riskcontrol.services.blacklist.remove_from_blacklist": case_remove_me_from_the_blacklist,
}
# Functions that take an ``actor`` but decide nothing about a person's money or case (catalog,
# rules and settings edits, secrets revealed under audit, the primitives the reviews use), or
# reach a swept review only through it (the rejected order's refund goes through refund_order;
# risk's automatic freeze through freeze_commissions).
NOT_A_REVIEW = {
    # Configuration of a site's access, audited; no money or standing decided.
    "distribution.docking.services.create_api_key",
    "distribution.docking.services.revoke_api_key",
    "distribution.docking.services.set_webhook",
    # The merchant's own catalogue and books: about no person.
    "catalog.services.upstream.import_upstream_products",
    "catalog.services.upstream.dock_upstream_items",
    "catalog.services.upstream_sync.connect_upstream",  # an upstream's address and key, audited
    "catalog.services.upstream_sync.set_upstream_webhook_secret",
    "orders.services.reconciliation.reconcile_statement",
    "catalog.services.products.add_bundle_item",
    "catalog.services.products.add_product_image",
    "catalog.services.products.create_category",
    "catalog.services.products.create_product",
    "catalog.services.products.move_category",
    "catalog.services.products.put_on_shelf",
    "catalog.services.products.remove_bundle_item",
    "catalog.services.products.remove_custom_field",
    "catalog.services.products.remove_product_image",
    "catalog.services.products.save_custom_field",
    "catalog.services.products.set_product_price",
    "catalog.services.products.take_off_shelf",
    "catalog.services.products.update_category",
    "catalog.services.products.update_product",
    "catalog.services.reusable.activate_reusable_key",
    "catalog.services.reusable.deactivate_reusable_key",
    "catalog.services.reusable.reveal_reusable_key_secret",
    "catalog.services.reusable.set_reusable_key_cap",
    "catalog.services.reusable.set_reusable_key_secret",
    "catalog.services.stock.reveal_card_key_secret",
    "catalog.services.stock.void_card_keys",
    "catalog.services.suppliers.create_supplier",
    "catalog.services.suppliers.delete_supplier_channel",
    "catalog.services.suppliers.save_supplier_channel",
    "catalog.services.suppliers.update_supplier",
    "catalog.services.vault.cancel_card_key_import",
    "catalog.services.vault.confirm_card_key_import",
    "catalog.services.vault.start_card_key_import",
    "commissions.services.auto_approval.save_auto_approval_policy",  # finance's rules, for everyone
    "commissions.services.ledger.post_journal_transaction",
    "commissions.services.rules.save_campaign",
    "commissions.services.rules.save_commission_rule",
    "commissions.services.rules.save_commission_tiers",
    "commissions.services.rules.save_policy",
    "commissions.services.rules.save_product_bonus",
    "commissions.services.tax_filing.export_month_withholding",  # a read for filing, audited
    "commissions.services.team_bonus.save_team_bonus_rule",
    "distribution.services.four_eyes.require_not_own_distributor",
    "distribution.services.four_eyes.require_not_own_order",
    "distribution.services.pricing.set_commission_depth",
    "distribution.services.tree.transition_distributor",
    "kamen.audit.record_audit",
    "kamen.four_eyes.require_another_person",
    "orders.services.redemption.redeem_voucher",  # the store checks a code; no money decided
    "orders.services.staff_actions.redrive_fulfilment",  # re-runs delivery that is owed
    "orders.services.state.move_locked_order",
    "orders.services.state.transition_order",
    "riskcontrol.services.blacklist.add_to_blacklist",
    "riskcontrol.services.blacklist.import_blacklist_csv",
    "orders.services.review.refund_rejected_order",
    "riskcontrol.services.assessment.freeze_distributor_commissions",
}
SERVICE_MODULES = ("services", "review", "blacklist", "kyc", "payouts", "audit", "four_eyes")


def _functions_that_act_for_a_person() -> set[str]:
    found = set()
    for app in ("catalog", "distribution", "commissions", "riskcontrol", "orders", "kamen"):
        package = importlib.import_module(app)
        for info in pkgutil.walk_packages(package.__path__, app + "."):
            name = info.name
            if ".tests" in name or ".migrations" in name or ".management" in name:
                continue
            if not any(part in name.split(".")[-1] or part in name.split(".") for part in SERVICE_MODULES):
                continue
            module = importlib.import_module(name)
            for function_name, function in vars(module).items():
                if (
                    inspect.isfunction(function)
                    and function.__module__ == name
                    and not function_name.startswith("_")
                    and "actor" in inspect.signature(function).parameters
                ):
                    found.add(f"{name}.{function_name}")
    return found


def test_every_review_service_is_swept():
    found = _functions_that_act_for_a_person()

    assert found - set(REVIEW_ACTIONS) - NOT_A_REVIEW == set(), "a new action: sweep it or say why it is not a review"
    assert set(REVIEW_ACTIONS) <= found


def _state():
    """Everything a review could change."""
    return (
        AuditLogEntry.objects.count(),
        list(Withdrawal.objects.order_by("pk").values_list("status", "reviewed_by")),
        list(Distributor.objects.order_by("pk").values_list("status", "parent_id")),
        list(Appeal.objects.order_by("pk").values_list("status", flat=True)),
        list(ReviewCase.objects.order_by("pk").values_list("status", flat=True)),
        list(Order.objects.order_by("pk").values_list("status", "refunded_amount")),
        PaymentCallback.objects.count(),
        Refund.objects.count(),
        OrderDelivery.objects.count(),
        BlacklistEntry.objects.count(),
        list(WalletHold.objects.order_by("pk").values_list("distributor_id", "is_active")),
        list(DockingSite.objects.order_by("pk").values_list("status", "credit_limit")),
        list(ApiRefundRequest.objects.order_by("pk").values_list("status", flat=True)),
        JournalTransaction.objects.count(),
    )


@pytest.mark.parametrize("service", sorted(REVIEW_ACTIONS))
def test_nobody_reviews_their_own_money_or_case(world, service):
    act = REVIEW_ACTIONS[service](world)
    before = _state()

    with pytest.raises(OwnCaseRefused) as refused:
        act(world.me)

    assert "四眼原则" in " ".join(refused.value.messages)
    assert _state() == before


@pytest.mark.parametrize("service", sorted(REVIEW_ACTIONS))
def test_a_colleague_may_take_the_same_decision(world, service):
    act = REVIEW_ACTIONS[service](world)
    before = _state()

    act(world.colleague)

    assert _state() != before


# --- the console: a clear message, not an error page -------------------------------------------


def test_finance_approving_their_own_withdrawal_in_the_console_is_told_why_and_nothing_is_paid(client, world):
    withdrawal = _my_withdrawal(world)
    client.force_login(world.me)

    response = client.post(
        reverse("admin:commissions_withdrawal_changelist"),
        {"action": "approve", "_selected_action": [withdrawal.pk]},
        follow=True,
    )

    assert response.status_code == 200 and "四眼原则" in response.content.decode()
    withdrawal.refresh_from_db()
    assert withdrawal.status == WithdrawalStatus.REQUESTED and withdrawal.reviewed_by is None


def test_a_risk_reviewer_deciding_an_order_they_earn_from_is_told_why(client, world):
    order = _held_order_i_earn_from(world)
    client.force_login(world.me)
    case = ReviewCase.objects.get(order=order)

    response = client.post(
        reverse("admin:riskcontrol_reviewcase_decide", args=[case.pk]), {"decision": "approved", "reason": "通过"}
    )

    assert "四眼原则" in response.content.decode()
    assert ReviewCase.objects.get(pk=case.pk).status == "pending"


# --- staff accounts and the network ------------------------------------------------------------


def _invite_url(distributor):
    Grade.objects.filter(pk=distributor.grade_id).update(is_default=True)
    return reverse("distribution:join", args=[distributor.invite_code])


def test_a_staff_account_opening_an_invite_link_is_refused_clearly(client, django_user_model):
    inviter = DistributorFactory()
    finance = _owner(django_user_model, "finance")
    client.force_login(finance)

    page = client.get(_invite_url(inviter)).content.decode()
    posted = client.post(_invite_url(inviter), {"region": "上海"}).content.decode()

    assert "员工账号不能加入分销网络" in page and 'name="region"' not in page
    assert "员工账号不能加入分销网络" in posted
    assert not Distributor.objects.filter(user=finance).exists()


def test_the_service_refuses_a_staff_account_too_unless_the_merchant_allows_it(django_user_model):
    from django.core.exceptions import ValidationError

    from distribution.services import join_network

    inviter = DistributorFactory()
    _invite_url(inviter)
    finance = _owner(django_user_model, "finance")

    with pytest.raises(ValidationError, match="员工账号不能加入分销网络"):
        join_network(user=finance, code=inviter.invite_code)
    DistributionSettings.objects.update_or_create(pk=1, defaults={"staff_may_join": True})
    joined = join_network(user=finance, code=inviter.invite_code)

    assert joined.user == finance and joined.parent_id == inviter.pk


def test_a_buyer_account_still_joins_through_an_invite_link(client, django_user_model):
    inviter = DistributorFactory()
    buyer = django_user_model.objects.create_user(username="buyer", password="kamen-test-pass")
    client.force_login(buyer)

    client.post(_invite_url(inviter), {"region": "上海"})

    assert Distributor.objects.get(user=buyer).parent_id == inviter.pk
