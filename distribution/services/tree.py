"""Every write to the distributor tree: join, approve/reject, staff move, freeze/clear.

One rule holds them together (docs/adr/0007): each opens a transaction and first takes
``pg_advisory_xact_lock(hashtext('distribution.distributor.tree'))``, then re-reads the nodes
it touches, because django-mptt rewrites ``lft``/``rght`` across the tree and takes no lock.
The parent foreign key is the truth; ``repair_tree`` rebuilds the index from it.

Moves and commissions: an order snapshots its upline (``Order.attribution["chain"]``) at
checkout and the commission split reads only that snapshot, so a move never changes
commissions already earned or still pending — it only changes who is above for orders placed
after it.
"""

from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from kamen.audit import record_audit
from kamen.four_eyes import require_another_person

from ..models import (
    AdmissionMode,
    DepositStatus,
    Distributor,
    DistributorStatus,
    DistributorStatusChange,
    Grade,
    Invitation,
)
from ..selectors import upline_ids
from .codes import new_code, normalize_code
from .four_eyes import require_not_own_distributor
from .pricing import get_settings
from .sales import move_team_totals
from .tree_lock import lock_tree

ALLOWED_TRANSITIONS: dict[str, set[str]] = {
    DistributorStatus.APPLIED: {DistributorStatus.ACTIVE, DistributorStatus.REJECTED},
    DistributorStatus.ACTIVE: {DistributorStatus.FROZEN, DistributorStatus.CLEARED},
    DistributorStatus.FROZEN: {DistributorStatus.ACTIVE, DistributorStatus.CLEARED},
    DistributorStatus.REJECTED: {DistributorStatus.APPLIED},
    DistributorStatus.CLEARED: set(),
}


class IllegalTransition(ValidationError):
    pass


def _unique_invite_code() -> str:
    while True:
        code = new_code()
        if (
            not Distributor.objects.filter(invite_code=code).exists()
            and not Invitation.objects.filter(code=code).exists()
        ):
            return code


def transition_distributor(
    *, distributor: Distributor, new_status: str, cause: str, actor=None
) -> Distributor:
    """The one place a distributor's status changes; raises on a move the table does not allow
    and leaves a status-change row. The caller holds the row (and the tree lock if needed)."""
    old_status = distributor.status
    if new_status not in ALLOWED_TRANSITIONS.get(old_status, set()):
        raise IllegalTransition(
            _("分销商状态不能从“%(old)s”变为“%(new)s”")
            % {
                "old": DistributorStatus(old_status).label,
                "new": DistributorStatus(new_status).label,
            }
        )
    fields = ["status", "updated_at"]
    distributor.status = new_status
    if new_status == DistributorStatus.ACTIVE and distributor.joined_at is None:
        distributor.joined_at = timezone.now()
        fields.append("joined_at")
    distributor.save(update_fields=fields)
    DistributorStatusChange.objects.create(
        distributor=distributor,
        old_status=old_status,
        new_status=new_status,
        cause=cause[:200],
        actor=actor if getattr(actor, "is_authenticated", False) else None,
    )
    return distributor


def _resolve_invitation(code: str) -> tuple[Distributor, Invitation | None]:
    """The inviter (and the invite link, if the code is one) for a code, or a clear error."""
    if not code:
        raise ValidationError({"code": [_("请填写邀请码")]})
    invitation = Invitation.objects.select_for_update().filter(code=code).first()
    if invitation is not None:
        if not invitation.is_active:
            raise ValidationError(
                {"code": [_("邀请链接“%(code)s”已停用") % {"code": code}]}
            )
        if (
            invitation.expires_at is not None
            and invitation.expires_at <= timezone.now()
        ):
            raise ValidationError(
                {"code": [_("邀请链接“%(code)s”已过期") % {"code": code}]}
            )
        if invitation.max_uses is not None and invitation.uses >= invitation.max_uses:
            raise ValidationError(
                {"code": [_("邀请链接“%(code)s”的使用次数已满") % {"code": code}]}
            )
        return Distributor.objects.select_related("grade").get(
            pk=invitation.inviter_id
        ), invitation
    inviter = (
        Distributor.objects.select_related("grade").filter(invite_code=code).first()
    )
    if inviter is None:
        raise ValidationError(
            {"code": [_("邀请码“%(code)s”不存在，请向邀请人核对") % {"code": code}]}
        )
    return inviter, None


def _default_grade() -> Grade:
    grade = Grade.objects.filter(is_default=True).first()
    if grade is None:
        raise ValidationError({"code": [_("商户尚未设置默认加入等级，暂时无法加入")]})
    return grade


@transaction.atomic
def join_network(*, user, code, region: str = "") -> Distributor:
    """Join under the owner of an invite code or link: the inviter becomes the parent.

    The grade comes from the invite link (else the merchant's default grade) and may not be
    above the inviter's. A grade admitted automatically, with no deposit and no first-order
    requirement, makes the newcomer active at once; with one, they become active when it is
    met (``record_deposit_held``, ``record_first_order``); a staff grade waits for approval.
    Bad codes, self-invitation and a second join are refused and change nothing.
    """
    _require_may_join(user)
    code = normalize_code(code)
    lock_tree()
    inviter, invitation = _resolve_invitation(code)
    if inviter.user_id == user.pk:
        raise ValidationError({"code": [_("不能使用自己的邀请码加入")]})
    existing = Distributor.objects.select_for_update().filter(user=user).first()
    if existing is not None and existing.status != DistributorStatus.REJECTED:
        raise ValidationError(
            {"code": [_("您已经是分销商，不能重复加入；更换上级请联系商户")]}
        )
    if inviter.status != DistributorStatus.ACTIVE:
        raise ValidationError(
            {
                "code": [
                    _("邀请人当前不能邀请新成员（状态：%(status)s）")
                    % {"status": inviter.get_status_display()}
                ]
            }
        )
    if not inviter.grade.may_recruit:
        raise ValidationError(
            {
                "code": [
                    _("邀请人的等级“%(grade)s”不能发展下级")
                    % {"grade": inviter.grade.name}
                ]
            }
        )
    grade = (
        invitation.grade
        if invitation is not None and invitation.grade_id
        else _default_grade()
    )
    if grade.rank > inviter.grade.rank:
        raise ValidationError(
            {
                "code": [
                    _("邀请等级“%(grade)s”不能高于邀请人的等级") % {"grade": grade.name}
                ]
            }
        )
    if existing is not None and (
        existing.pk == inviter.pk or inviter.is_descendant_of(existing)
    ):
        raise ValidationError({"code": [_("不能加入到自己的下级之下")]})
    deposit = grade.deposit_amount
    values = {
        "grade": grade,
        "region": str(region or "").strip()[:64],
        "deposit_amount": deposit,
        "deposit_status": DepositStatus.PENDING if deposit > 0 else DepositStatus.NONE,
    }
    if existing is None:
        distributor = Distributor.objects.create(
            user=user,
            parent=Distributor.objects.get(pk=inviter.pk),
            invite_code=_unique_invite_code(),
            **values,
        )
        DistributorStatusChange.objects.create(
            distributor=distributor,
            old_status="",
            new_status=DistributorStatus.APPLIED,
            cause=_("通过邀请码 %(code)s 申请加入") % {"code": code},
        )
    else:
        # A rejected applicant applies again, possibly under someone else.
        distributor = Distributor.objects.get(pk=existing.pk)
        distributor.move_to(Distributor.objects.get(pk=inviter.pk), "last-child")
        distributor = Distributor.objects.get(pk=existing.pk)
        for name, value in values.items():
            setattr(distributor, name, value)
        distributor.save(update_fields=[*values, "updated_at"])
        transition_distributor(
            distributor=distributor,
            new_status=DistributorStatus.APPLIED,
            cause=_("通过邀请码 %(code)s 重新申请") % {"code": code},
        )
    if invitation is not None:
        Invitation.objects.filter(pk=invitation.pk).update(uses=F("uses") + 1)
    _admit_automatically(distributor, cause=_("等级自动通过"), audited=False)
    return distributor


def register_and_join(
    *,
    username,
    password,
    code,
    phone: str = "",
    display_name: str = "",
    region: str = "",
) -> Distributor:
    """A visitor with no account signs up through an invite link: the account and the
    membership are created together or not at all."""
    User = get_user_model()
    errors: dict[str, list[str]] = {}
    username = str(username or "").strip()
    if not username:
        errors["username"] = [_("请填写用户名")]
    elif len(username) > 150:
        errors["username"] = [_("用户名最多 150 个字符")]
    elif User.objects.filter(username__iexact=username).exists():
        errors["username"] = [_("用户名“%(name)s”已被使用") % {"name": username}]
    candidate = User(
        username=username,
        phone=str(phone or "").strip()[:20],
        display_name=str(display_name or "").strip()[:64],
    )
    try:
        validate_password(password or "", user=candidate)
    except ValidationError as error:
        errors["password"] = list(error.messages)
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        candidate.set_password(password)
        candidate.save()
        return join_network(user=candidate, code=code, region=region)


def staff_may_join(user) -> bool:
    """Whether ``user`` may become a distributor: anyone but staff, unless the merchant's
    setting lets staff join (the four-eyes rule then still guards their own money)."""
    if not (getattr(user, "is_staff", False) or getattr(user, "is_superuser", False)):
        return True
    return get_settings().staff_may_join


def staff_join_refusal() -> str:
    return _("员工账号不能加入分销网络（可审核资金的账号不能同时从中获利）；请退出后台账号，用个人账号加入")


def _require_may_join(user) -> None:
    if not staff_may_join(user):
        raise ValidationError({"code": [staff_join_refusal()]})


def _require_perm(actor, perm: str) -> None:
    if (
        actor is None
        or not getattr(actor, "is_staff", False)
        or not actor.has_perm(perm)
    ):
        raise PermissionDenied(_("您没有执行此操作的权限"))


@transaction.atomic
def create_root_distributor(
    *, user, grade: Grade, actor, region: str = "", request=None
) -> Distributor:
    """Staff put a distributor at the top of a new tree (a 总代 signed by the merchant)."""
    _require_perm(actor, "distribution.add_distributor")
    _require_may_join(user)
    require_another_person(actor=actor, subject_user_ids=[user.pk], what=_("添加分销商"))
    lock_tree()
    if Distributor.objects.filter(user=user).exists():
        raise ValidationError({"user": [_("该用户已经是分销商")]})
    distributor = Distributor.objects.create(
        user=user,
        parent=None,
        grade=grade,
        invite_code=_unique_invite_code(),
        region=str(region or "")[:64],
    )
    DistributorStatusChange.objects.create(
        distributor=distributor,
        old_status="",
        new_status=DistributorStatus.APPLIED,
        cause=_("商户直接添加"),
        actor=actor,
    )
    transition_distributor(
        distributor=distributor,
        new_status=DistributorStatus.ACTIVE,
        cause=_("商户直接添加"),
        actor=actor,
    )
    record_audit(
        actor=actor,
        action="distribution.distributor.create",
        target=distributor,
        request=request,
        changes={"grade": [None, grade.name]},
    )
    return distributor


def admission_problems(distributor: Distributor) -> list[str]:
    """What an applicant still lacks to be admitted: the deposit held in full, the first-order
    amount reached by real paid orders. Empty when nothing is missing."""
    problems = []
    if distributor.deposit_amount > 0 and distributor.deposit_status != DepositStatus.HELD:
        problems.append(
            _("该等级需缴纳可退保证金 ¥%(amount)s，尚未缴清")
            % {"amount": distributor.deposit_amount}
        )
    first_order = distributor.grade.first_order_amount
    if first_order > 0 and distributor.first_order_reached_at is None:
        problems.append(
            _("该等级要求首单金额达到 ¥%(amount)s（已支付订单累计），尚未达到")
            % {"amount": first_order}
        )
    return problems


def _admit_automatically(distributor: Distributor, *, cause: str, audited: bool = True) -> bool:
    """An applicant of an automatically admitted grade becomes active once nothing is missing
    (the caller holds the distributor's row). Audited when it follows a payment (a join that
    needs nothing is the join itself)."""
    if (
        distributor.status != DistributorStatus.APPLIED
        or distributor.grade.admission_mode != AdmissionMode.AUTOMATIC
        or admission_problems(distributor)
    ):
        return False
    transition_distributor(
        distributor=distributor, new_status=DistributorStatus.ACTIVE, cause=cause
    )
    if not audited:
        return True
    record_audit(
        actor=None,
        action="distribution.distributor.admitted",
        target=distributor,
        changes={"status": [DistributorStatus.APPLIED, DistributorStatus.ACTIVE], "cause": [None, cause]},
    )
    return True


def _locked(distributor_id: int) -> Distributor:
    return (
        Distributor.objects.select_for_update(of=("self",))
        .select_related("grade")
        .get(pk=distributor_id)
    )


@transaction.atomic
def record_deposit_held(*, distributor_id: int, held: Decimal) -> Distributor:
    """The ledger now holds ``held`` as the distributor's deposit (commissions calls this in
    the transaction that booked it): held in full makes the deposit ``held``, and may admit an
    applicant of an automatically admitted grade."""
    locked = _locked(distributor_id)
    if (
        locked.deposit_amount > 0
        and locked.deposit_status in (DepositStatus.PENDING, DepositStatus.REFUNDED)
        and held >= locked.deposit_amount
    ):
        old = locked.deposit_status
        locked.deposit_status = DepositStatus.HELD
        locked.save(update_fields=["deposit_status", "updated_at"])
        record_audit(
            actor=None,
            action="distribution.distributor.deposit_held",
            target=locked,
            changes={"deposit_status": [old, DepositStatus.HELD], "held": [None, str(held)]},
        )
        _admit_automatically(locked, cause=_("保证金已缴清，自动通过"))
    return locked


@transaction.atomic
def record_deposit_returned(*, distributor_id: int) -> Distributor:
    """The deposit has left the deposit account (refunded, or taken against a debt)."""
    locked = _locked(distributor_id)
    if locked.deposit_status != DepositStatus.REFUNDED:
        old = locked.deposit_status
        locked.deposit_status = DepositStatus.REFUNDED
        locked.save(update_fields=["deposit_status", "updated_at"])
        record_audit(
            actor=None,
            action="distribution.distributor.deposit_returned",
            target=locked,
            changes={"deposit_status": [old, DepositStatus.REFUNDED]},
        )
    return locked


def record_first_order(*, distributor_id: int, paid_total: Decimal) -> bool:
    """The pipeline tells the network what a distributor's own paid orders (less refunds) now
    add up to; reaching the grade's first-order amount is recorded once, and admits an
    applicant of an automatically admitted grade. Runs in the caller's transaction (the
    payment's), so the sale that reaches it and the admission stand or fall together. True
    when it was reached now."""
    with transaction.atomic(savepoint=False):
        locked = _locked(distributor_id)
        required = locked.grade.first_order_amount
        if locked.first_order_reached_at is not None or required <= 0 or paid_total < required:
            return False
        locked.first_order_reached_at = timezone.now()
        locked.save(update_fields=["first_order_reached_at", "updated_at"])
        record_audit(
            actor=None,
            action="distribution.distributor.first_order_reached",
            target=locked,
            changes={"paid_total": [None, str(paid_total)], "required": [None, str(required)]},
        )
        _admit_automatically(locked, cause=_("首单金额已达到，自动通过"))
        return True


@transaction.atomic
def approve_distributor(*, distributor: Distributor, actor, request=None) -> Distributor:
    """Staff admit an applicant. A grade with a deposit needs it held in full in the ledger
    (paid through the gateway); one with a first-order amount needs the applicant's own paid
    orders to have reached it. Nothing is taken on trust from a tick."""
    _require_perm(actor, "distribution.approve_distributor")
    require_not_own_distributor(actor=actor, distributor=distributor, what=_("审核分销商申请"))
    locked = _locked(distributor.pk)
    if locked.status == DistributorStatus.ACTIVE:
        return locked
    if locked.status != DistributorStatus.APPLIED:
        raise IllegalTransition(_("只有待审核的申请可以通过"))
    problems = admission_problems(locked)
    if problems:
        raise ValidationError(problems)
    transition_distributor(
        distributor=locked,
        new_status=DistributorStatus.ACTIVE,
        cause=_("审核通过"),
        actor=actor,
    )
    record_audit(
        actor=actor,
        action="distribution.distributor.approve",
        target=locked,
        request=request,
        changes={"status": [DistributorStatus.APPLIED, DistributorStatus.ACTIVE]},
    )
    return locked


@transaction.atomic
def reject_distributor(
    *, distributor: Distributor, actor, reason: str, request=None
) -> Distributor:
    _require_perm(actor, "distribution.approve_distributor")
    require_not_own_distributor(actor=actor, distributor=distributor, what=_("审核分销商申请"))
    reason = str(reason or "").strip()
    if not reason:
        raise ValidationError({"reason": [_("请填写拒绝原因")]})
    locked = Distributor.objects.select_for_update().get(pk=distributor.pk)
    if locked.status == DistributorStatus.REJECTED:
        return locked
    transition_distributor(
        distributor=locked,
        new_status=DistributorStatus.REJECTED,
        cause=reason,
        actor=actor,
    )
    record_audit(
        actor=actor,
        action="distribution.distributor.reject",
        target=locked,
        request=request,
        changes={
            "status": [DistributorStatus.APPLIED, DistributorStatus.REJECTED],
            "reason": [None, reason],
        },
    )
    return locked


@transaction.atomic
def move_subtree(
    *,
    distributor: Distributor,
    new_parent: Distributor | None,
    actor,
    reason: str,
    request=None,
) -> Distributor:
    """Staff move a distributor with their whole team under ``new_parent`` (None: a new tree).

    A distributor never changes their own parent. Refused with a clear message: a move under
    the node itself or one of its descendants (a cycle), or under a member who is not active.
    Commissions already earned or pending keep the upline snapshotted on their orders.
    """
    if actor is not None and getattr(actor, "pk", None) == distributor.user_id:
        raise PermissionDenied(_("分销商不能修改自己的上级，请联系商户"))
    _require_perm(actor, "distribution.move_distributor")
    if new_parent is not None:  # a team moved under oneself would pay oneself
        require_not_own_distributor(actor=actor, distributor=new_parent, what=_("移动到您名下"))
    reason = str(reason or "").strip()
    if not reason:
        raise ValidationError({"reason": [_("请填写移动原因")]})
    lock_tree()
    node = Distributor.objects.get(pk=distributor.pk)
    target = (
        Distributor.objects.get(pk=new_parent.pk) if new_parent is not None else None
    )
    if target is not None:
        if target.pk == node.pk or (
            target.tree_id == node.tree_id and node.lft < target.lft < node.rght
        ):
            raise ValidationError(
                {"parent": [_("不能把分销商移动到自己或自己的下级之下（会形成循环）")]}
            )
        if target.status != DistributorStatus.ACTIVE:
            raise ValidationError(
                {
                    "parent": [
                        _("新上级当前状态为“%(status)s”，不能接收下级")
                        % {"status": target.get_status_display()}
                    ]
                }
            )
    if node.parent_id == (target.pk if target else None):
        return node
    old_parent = node.parent
    team_size = (node.rght - node.lft - 1) // 2
    old_upline = upline_ids(node, depth=1_000_000)
    if target is None:
        node.move_to(None)
    else:
        node.move_to(target, "last-child")
    move_team_totals(
        distributor_id=node.pk,
        old_upline=old_upline,
        new_upline=upline_ids(node, depth=1_000_000),
    )
    record_audit(
        actor=actor,
        action="distribution.distributor.move",
        target=node,
        request=request,
        changes={
            "parent": [
                str(old_parent) if old_parent else None,
                str(target) if target else None,
            ],
            "reason": [None, reason],
            "team_size": [None, team_size],
        },
    )
    return Distributor.objects.get(pk=node.pk)


@transaction.atomic
def change_distributor_status(
    *, distributor: Distributor, new_status: str, actor, reason: str, request=None
) -> Distributor:
    """Freeze, unfreeze or clear a distributor (staff). Clearing also lifts their direct team
    to the cleared member's parent, so nobody below is left hanging under someone who is gone;
    orders already placed keep their snapshotted upline."""
    _require_perm(actor, "distribution.freeze_distributor")
    require_not_own_distributor(actor=actor, distributor=distributor, what=_("更改分销商状态"))
    reason = str(reason or "").strip()
    if not reason:
        raise ValidationError({"reason": [_("请填写原因")]})
    return _change_status(
        distributor_id=distributor.pk, new_status=new_status, actor=actor, reason=reason, request=request
    )


def _change_status(*, distributor_id: int, new_status: str, actor, reason: str, request=None) -> Distributor:
    lock_tree()
    node = Distributor.objects.select_for_update().get(pk=distributor_id)
    if node.status == new_status:
        return node
    old_status = node.status
    transition_distributor(
        distributor=node, new_status=new_status, cause=reason, actor=actor
    )
    lifted = []
    if new_status == DistributorStatus.CLEARED:
        for child_id in list(
            Distributor.objects.filter(parent_id=node.pk)
            .order_by("lft")
            .values_list("pk", flat=True)
        ):
            child = Distributor.objects.get(pk=child_id)
            parent = (
                Distributor.objects.get(pk=node.parent_id) if node.parent_id else None
            )
            child.move_to(parent, "last-child") if parent else child.move_to(None)
            lifted.append(child_id)
            node = Distributor.objects.get(pk=node.pk)
    record_audit(
        actor=actor,
        action=f"distribution.distributor.{new_status}",
        target=node,
        request=request,
        changes={"status": [old_status, new_status], "reason": [None, reason]}
        | ({"lifted_children": [None, lifted]} if lifted else {}),
    )
    return Distributor.objects.get(pk=node.pk)


@transaction.atomic
def leave_network(*, distributor: Distributor, actor, reason: str, request=None) -> Distributor:
    """A distributor leaves (their deposit is being given back): an active or frozen member
    is cleared (their team lifted to their parent), an applicant's application rejected; one
    already out stays as they are. The caller (the deposit refund's approval) holds the
    permission for the decision; nobody decides about their own account."""
    require_not_own_distributor(actor=actor, distributor=distributor, what=_("退出网络"))
    reason = str(reason or "").strip() or _("退出网络")
    status = Distributor.objects.values_list("status", flat=True).get(pk=distributor.pk)
    if status in (DistributorStatus.ACTIVE, DistributorStatus.FROZEN):
        return _change_status(
            distributor_id=distributor.pk,
            new_status=DistributorStatus.CLEARED,
            actor=actor,
            reason=reason,
            request=request,
        )
    if status == DistributorStatus.APPLIED:
        return _change_status(
            distributor_id=distributor.pk,
            new_status=DistributorStatus.REJECTED,
            actor=actor,
            reason=reason,
            request=request,
        )
    return Distributor.objects.get(pk=distributor.pk)


@transaction.atomic
def create_invitation(
    *,
    inviter: Distributor,
    grade: Grade | None = None,
    max_uses: int | None = None,
    expires_at=None,
) -> Invitation:
    """An invite link of a distributor who may recruit, into a grade no higher than theirs."""
    inviter = Distributor.objects.select_related("grade").get(pk=inviter.pk)
    if inviter.status != DistributorStatus.ACTIVE or not inviter.grade.may_recruit:
        raise PermissionDenied(_("您当前不能发展下级"))
    if grade is not None and grade.rank > inviter.grade.rank:
        raise ValidationError({"grade": [_("邀请等级不能高于您自己的等级")]})
    if max_uses is not None and max_uses < 1:
        raise ValidationError({"max_uses": [_("使用次数至少为 1")]})
    return Invitation.objects.create(
        code=_unique_invite_code(),
        inviter=inviter,
        grade=grade,
        max_uses=max_uses,
        expires_at=expires_at,
    )


def tree_problems() -> list[str]:
    """What is wrong with the mptt index compared with the parent column (empty: nothing).

    Checks each tree's numbers are exactly 1..2n, every interval nests, the parent implied by
    the nesting is the parent column, and the level is the depth. A rebuild from the parent
    column gives the same nesting (sibling order aside), which is what the property tests use.
    """
    rows = list(
        Distributor.objects.order_by("tree_id", "lft").values_list(
            "pk", "parent_id", "tree_id", "lft", "rght", "level"
        )
    )
    problems: list[str] = []
    by_tree: dict[int, list] = {}
    for row in rows:
        by_tree.setdefault(row[2], []).append(row)
    for tree_id, members in by_tree.items():
        numbers = sorted(
            [lft for _, _, _, lft, _, _ in members]
            + [rght for _, _, _, _, rght, _ in members]
        )
        if numbers != list(range(1, 2 * len(members) + 1)):
            problems.append(f"tree {tree_id}: lft/rght are not 1..{2 * len(members)}")
        stack: list[tuple] = []
        for pk, parent_id, _tree, lft, rght, level in members:
            while stack and stack[-1][4] < lft:
                stack.pop()
            implied_parent = stack[-1][0] if stack else None
            if stack and rght > stack[-1][4]:
                problems.append(f"node {pk}: interval overlaps its parent's")
            if implied_parent != parent_id:
                problems.append(
                    f"node {pk}: nested under {implied_parent}, parent column says {parent_id}"
                )
            if level != len(stack):
                problems.append(f"node {pk}: level {level}, depth {len(stack)}")
            stack.append((pk, parent_id, _tree, lft, rght, level))
    return problems


def nesting_snapshot() -> dict[int, tuple]:
    """Per node: its parent and the set of its ancestors as the nested sets say."""
    rows = list(
        Distributor.objects.order_by("tree_id", "lft").values_list(
            "pk", "tree_id", "lft", "rght"
        )
    )
    result: dict[int, tuple] = {}
    stack: list[tuple] = []
    current_tree = None
    for pk, tree_id, lft, rght in rows:
        if tree_id != current_tree:
            stack, current_tree = [], tree_id
        while stack and stack[-1][2] < lft:
            stack.pop()
        result[pk] = (
            stack[-1][0] if stack else None,
            frozenset(entry[0] for entry in stack),
        )
        stack.append((pk, lft, rght))
    return result


@transaction.atomic
def repair_tree() -> None:
    """Recompute the mptt columns from ``parent`` (after a raw write, a bulk load, or damage)."""
    lock_tree()
    Distributor.objects.rebuild()
