"""A small world for the permission matrix: one row of every model the console shows, two
distributor subtrees, a buyer's order, and one login per role."""

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from django.contrib.auth.models import Group
from django.utils import timezone

from catalog.models import (
    CardKeyImport,
    SandboxOrder,
    StockAlert,
    SupplierAlert,
    SupplierPriceChange,
    SupplierRechargeAttempt,
)
from catalog.models.products import RedemptionMode
from catalog.services.reusable import set_reusable_key_secret
from catalog.services.suppliers import create_supplier
from catalog.services.vault import PAYLOAD_CONTEXT
from catalog.tests.suppliers_support import add_channel, make_sku, make_supplier
from commissions.models import (
    Campaign,
    CapEvent,
    CommissionRule,
    CommissionTier,
    ProductBonus,
    SettlementRun,
    TeamBonusRule,
    WalletHold,
    Withdrawal,
)
from commissions.services.auto_approval import get_auto_approval_policy
from commissions.services.split import split_commissions
from commissions.services.withdrawals import add_payout_account
from commissions.tests.factories import make_chain, make_order
from distribution.models import Appeal, CopyTemplate, Distributor, PromotionRule
from distribution.services.pricing import save_sub_store
from distribution.services.referrals import create_referral_link
from distribution.services.tree import create_invitation
from distribution.tests.factories import DistributorFactory, GradeFactory, UserFactory
from kamen import crypto
from kamen.audit import record_audit
from kamen.roles import FINANCE, OPERATOR, OWNER, RISK
from orders.models import PaymentCallback, Refund, VoucherRedemption
from orders.services.access import SESSION_KEY as ORDER_ACCESS_SESSION_KEY
from orders.services.redemption import issue_vouchers
from orders.tests.factories import add_keys
from orders.tests.postsale_helpers import make_order as make_buyer_order
from orders.tests.postsale_helpers import make_product as make_postsale_product
from riskcontrol.services.blacklist import add_to_blacklist
from riskcontrol.kyc import submit_real_name
from riskcontrol.models import ReviewCase, RiskEvent

ROLES = ("buyer", "agent", "other_agent", "owner", "operator", "finance", "risk", "superuser")
STAFF_GROUPS = {"owner": OWNER, "operator": OPERATOR, "finance": FINANCE, "risk": RISK}
ID_NUMBER = "11010519491231002X"
BANK_CARD = "6222021234567890128"
CARD_KEY_SECRET = "MATRIX-SECRET-0001"


@dataclass
class World:
    users: dict = field(default_factory=dict)
    objects: dict = field(default_factory=dict)

    def __getattr__(self, name):
        try:
            return self.__dict__["objects"][name]
        except KeyError:
            raise AttributeError(name) from None


def build_world() -> World:
    world = World()
    o = world.objects

    # Staff, one per group, and a superuser.
    for role, group in STAFF_GROUPS.items():
        user = UserFactory(username=f"staff-{role}", is_staff=True)
        user.groups.add(Group.objects.get(name=group))
        world.users[role] = user
    world.users["superuser"] = UserFactory(username="root", is_staff=True, is_superuser=True)

    # Two subtrees: agent → agent_child (with sales), other_agent → other_child.
    agent_child, agent = make_chain(2)
    other_child, other_agent = make_chain(2)
    world.users["agent"] = agent.user
    world.users["other_agent"] = other_agent.user
    o.update(agent=agent, agent_child=agent_child, other_agent=other_agent, other_child=other_child)
    o["applicant"] = DistributorFactory(parent=agent, status="applied")

    order = make_order(agent_child)
    o["agent_order"] = order
    o["product"] = order.product
    split_commissions(order=order)
    o["other_order"] = make_order(other_child)

    o["sub_store"] = save_sub_store(distributor=agent, name="A 分站", slug="agent-a")
    o["link"] = create_referral_link(distributor=agent_child, channel="wechat")
    o["invitation"] = create_invitation(inviter=agent, grade=agent.grade)
    o["appeal"] = Appeal.objects.create(distributor=agent_child, reason="误判")
    o["copy_template"] = CopyTemplate.objects.create(channel="wechat", title="标题", body="正文")
    o["promotion_rule"] = PromotionRule.objects.create(from_grade=agent.grade, to_grade=GradeFactory())

    # Catalog: card keys, an import, a reusable key, suppliers and what they leave behind.
    product = o["product"]
    o["card_key"] = add_keys(product, 1, prefix="MATRIX")[0]
    key_id, blob = crypto.encrypt("A-1\nA-2", associated_data=PAYLOAD_CONTEXT)
    o["card_key_import"] = CardKeyImport.objects.create(
        product=product,
        payload_ciphertext=blob,
        payload_key_id=key_id,
        status="validated",
        valid_count=2,
        total_lines=2,
    )
    o["reusable_key"] = set_reusable_key_secret(
        product=make_postsale_product(name="共享账号"), secret=CARD_KEY_SECRET, actor=world.users["owner"]
    )
    o["stock_alert"] = StockAlert.objects.create(product=product, threshold=5, available_count=1)
    supplier, account = make_supplier("供应商甲")
    make_sku("SKU-1")
    channel = add_channel(product, supplier, "SKU-1")
    o.update(supplier=supplier, sandbox_account=account, channel=channel)
    # An upstream Kamen (docking, issue 17 §2) at an address that refuses at once.
    o["upstream_supplier"] = create_supplier(
        actor=None,
        app_secret="upstream-secret-0123",
        name="上游甲",
        adapter="kamen_api",
        base_url="http://127.0.0.1:9/",
        app_id="ak_matrix",
    )
    o["supplier_alert"] = SupplierAlert.objects.create(kind="low_balance", supplier=supplier, message="余额低")
    o["price_change"] = SupplierPriceChange.objects.create(
        channel=channel, old_cost=Decimal("1"), new_cost=Decimal("2")
    )
    o["recharge_attempt"] = SupplierRechargeAttempt.objects.create(
        reference="R1",
        channel=channel,
        supplier=supplier,
        product=product,
        out_order_no="O1",
        target="13800000000",
        quantity=1,
    )
    o["sandbox_order"] = SandboxOrder.objects.create(
        account=account,
        out_order_no="O1",
        order_no="S1",
        sku="SKU-1",
        target="13800000000",
        quantity=1,
        amount=Decimal("1"),
        status="success",
    )

    # A buyer's order with a voucher; the buyer's browser holds the access grant.
    voucher_product = make_postsale_product(name="到店券", redemption_mode=RedemptionMode.CODE_AND_DYNAMIC)
    buyer_order = make_buyer_order(product=voucher_product)
    o["buyer_order"] = buyer_order
    o["voucher"] = issue_vouchers(order=buyer_order)[0]
    o["voucher_redemption"] = VoucherRedemption.objects.create(voucher=o["voucher"], outcome="unknown_code")
    o["refund"] = Refund.objects.create(order=buyer_order, amount=Decimal("1"), out_refund_no="RF1", reason="测试")
    o["callback"] = PaymentCallback.objects.create(gateway="sandbox", event_id="EV1", outcome="ignored")

    # Commissions: rules, a payout account, a withdrawal, a hold, a settlement run.
    o["commission_rule"] = CommissionRule.objects.create(level=1, rate_bp=100)
    o["product_bonus"] = ProductBonus.objects.create(product=product, bonus_bp=100)
    now = timezone.now()
    o["campaign"] = Campaign.objects.create(
        name="双十一", multiplier_bp=12000, starts_at=now, ends_at=now + timedelta(days=1)
    )
    o["team_bonus_rule"] = TeamBonusRule.objects.create(threshold=Decimal("1000"))
    o["tier"] = CommissionTier.objects.create(lower_bound=Decimal("0"), rate_bp=100)
    o["cap_event"] = CapEvent.objects.create(
        order=order, computed_amount=Decimal("2"), capped_amount=Decimal("1"), reason="上限"
    )
    o["settlement_run"] = SettlementRun.objects.create(key="daily-1", cycle="daily", cutoff=now)
    o["payout_account"] = add_payout_account(
        distributor=agent_child, method="bank_card", holder_name="张三", account=BANK_CARD, bank_name="工行"
    )
    o["withdrawal"] = Withdrawal.objects.create(
        distributor=agent_child,
        payout_account=o["payout_account"],
        request_token="t1",
        payout_no="P1",
        amount=Decimal("10"),
        net_amount=Decimal("10"),
    )
    o["wallet_hold"] = WalletHold.objects.create(distributor=agent_child, reason="风控")
    # The logged-in agent's own withdrawal (their tax statement page has a month to show).
    o["agent_withdrawal"] = Withdrawal.objects.create(
        distributor=agent,
        payout_account=add_payout_account(
            distributor=agent, method="alipay", holder_name="李四", account="13800138001"
        ),
        request_token="t2",
        payout_no="P2",
        amount=Decimal("10"),
        net_amount=Decimal("10"),
    )
    o["auto_approval_policy"] = get_auto_approval_policy()

    # Risk: an event, a case, a blacklist entry, a real-name verification.
    o["risk_event"] = RiskEvent.objects.create(
        rule="ip_velocity", action="review", order_no=order.order_no, explanation="同一 IP 下单过多"
    )
    o["review_case"] = ReviewCase.objects.create(order=o["other_order"], reasons="同一 IP 下单过多")
    o["blacklist_entry"] = add_to_blacklist(kind="ip", value="203.0.113.9", reason="刷单", actor=world.users["risk"])
    o["real_name"] = submit_real_name(
        distributor=agent_child, name="张三", id_number=ID_NUMBER, bank_card=BANK_CARD, mobile="13812345678"
    )
    # Docking (docs/adr/0019): a site with a key, an API order and its refund request, an event.
    from distribution.docking.models import ApiKey, DockingSite, WebhookEvent
    from orders.api.models import ApiRefundRequest, DockingOrder

    o["docking_site"] = DockingSite.objects.create(
        distributor=agent_child, name="下游站", contact_email="d@example.com"
    )
    o["api_key"] = ApiKey.objects.create(
        site=o["docking_site"], key_id="ak_matrix", secret_ciphertext=b"x", secret_key_id="k", scopes=["catalog:read"]
    )
    o["docking_order"] = DockingOrder.objects.create(
        site=o["docking_site"], order=o["other_order"], client_order_no="M-1", request_fingerprint="f"
    )
    o["api_refund_request"] = ApiRefundRequest.objects.create(docking_order=o["docking_order"], reason="测试")
    o["webhook_event"] = WebhookEvent.objects.create(
        event_id="evt_matrix", site=o["docking_site"], kind="order.delivered"
    )
    record_audit(actor=world.users["owner"], action="matrix.test", target=product)

    # Reconciliation (issue 18): a day whose statement did not match.
    from orders.models import GatewayStatement, StatementDifference

    o["gateway_statement"] = GatewayStatement.objects.create(
        gateway="sandbox", bill_date="2026-12-07", status="differences", line_count=1, difference_count=1
    )
    StatementDifference.objects.create(
        statement=o["gateway_statement"], kind="missing_in_books", out_trade_no="K-NOT-OURS", statement_amount=1
    )
    # Deposits (docs/adr/0023): a deposit payment and a refund request of agent_child's.
    from commissions.models import DepositRefund
    from orders.models import DepositPayment

    o["deposit_payment"] = DepositPayment.objects.create(
        deposit_no="D-MATRIX", distributor=agent_child, amount=Decimal("500"), gateway="sandbox"
    )
    o["deposit_refund"] = DepositRefund.objects.create(
        distributor=agent_child, payout_account=o["payout_account"], request_token="d1", amount=Decimal("500")
    )
    return world


def client_for(role: str, world: World, client_class):
    """A test client logged in as ``role``; the buyer is anonymous but holds the grant to their
    own order, as the browser that checked out would."""
    client = client_class()
    if role == "buyer":
        session = client.session
        session[ORDER_ACCESS_SESSION_KEY] = [world.buyer_order.order_no]
        session.save()
    else:
        client.force_login(world.users[role])
    return client


def distributor_of(world: World, role: str) -> Distributor:
    return Distributor.objects.get(user=world.users[role])
