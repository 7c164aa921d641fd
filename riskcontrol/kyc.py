"""Real-name (实名) verification: the provider adapter, the sandbox Kamen ships, the service.

A provider checks that name, ID number, bank card and mobile belong to one person (the usual
四要素 check of Chinese KYC vendors). Kamen validates the format first (GB 11643 check digit,
age ≥ 18, Luhn, mainland mobile), calls the provider outside any transaction, then stores the
result: the four facts encrypted together with ``kamen.crypto`` (bound to the distributor),
masks for every page, and a blind index of the ID number so one person cannot verify several
distributor accounts.
"""

import json
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _

from kamen import crypto
from kamen.audit import record_audit

from . import validators
from .models import BlacklistKind, RealNameStatus, RealNameVerification

logger = logging.getLogger(__name__)
MAX_ATTEMPTS_PER_DAY = 5


@dataclass(frozen=True)
class RealNameFacts:
    name: str
    id_number: str
    bank_card: str
    mobile: str


@dataclass(frozen=True)
class ProviderResult:
    is_match: bool
    reference: str
    message: str = ""


class RealNameProviderError(Exception):
    """The provider could not answer (network, outage): nothing is decided, try again later."""


class RealNameProvider:
    code = "base"

    def verify(self, facts: RealNameFacts) -> ProviderResult:
        raise NotImplementedError


class SandboxRealNameProvider(RealNameProvider):
    """Kamen's sandbox: every well-formed set of facts matches, except a mobile ending in 0000
    (the four facts do not belong to one person) and one ending in 9999 (provider down)."""

    code = "sandbox"

    def verify(self, facts: RealNameFacts) -> ProviderResult:
        if facts.mobile.endswith("9999"):
            raise RealNameProviderError("sandbox: provider unavailable")
        reference = "SBX" + secrets.token_hex(8).upper()
        if facts.mobile.endswith("0000"):
            return ProviderResult(
                False, reference, _("姓名、身份证号、银行卡号与手机号不属于同一人")
            )
        return ProviderResult(True, reference)


def get_provider() -> RealNameProvider:
    path = getattr(
        settings, "KAMEN_REAL_NAME_PROVIDER", "riskcontrol.kyc.SandboxRealNameProvider"
    )
    return import_string(path)()


def _associated_data(distributor_id: int) -> bytes:
    return f"real-name:{distributor_id}".encode()


def validate_facts(*, name, id_number, bank_card, mobile) -> RealNameFacts:
    """Every field checked, every message at once (ValidationError keyed by field)."""
    errors: dict[str, list[str]] = {}
    values = {}
    for field, validator in (
        ("name", validators.validate_real_name),
        ("id_number", validators.validate_id_number),
        ("bank_card", validators.validate_bank_card),
        ("mobile", validators.validate_mobile),
    ):
        raw = {
            "name": name,
            "id_number": id_number,
            "bank_card": bank_card,
            "mobile": mobile,
        }[field]
        try:
            values[field] = validator(raw)
        except ValidationError as error:
            errors[field] = error.messages
    if errors:
        raise ValidationError(errors)
    return RealNameFacts(**values)


def submit_real_name(
    *, distributor, name, id_number, bank_card, mobile, provider=None
) -> RealNameVerification:
    """Verify a distributor's real name. Returns the stored verification (verified or failed);
    raises ValidationError for bad input, an ID already used, too many attempts or a provider
    outage, changing nothing."""
    from .services.blacklist import id_number_index

    facts = validate_facts(
        name=name, id_number=id_number, bank_card=bank_card, mobile=mobile
    )
    existing = RealNameVerification.objects.filter(
        distributor=distributor, status=RealNameStatus.VERIFIED
    ).first()
    if existing is not None:
        return existing
    since = timezone.now() - timedelta(days=1)
    if (
        RealNameVerification.objects.filter(
            distributor=distributor, created_at__gte=since
        ).count()
        >= MAX_ATTEMPTS_PER_DAY
    ):
        raise ValidationError(
            _("今日认证次数已达上限（%(max)s 次），请明天再试")
            % {"max": MAX_ATTEMPTS_PER_DAY}
        )
    index = id_number_index(facts.id_number)
    if (
        RealNameVerification.objects.filter(
            id_number_index=index, status=RealNameStatus.VERIFIED
        )
        .exclude(distributor=distributor)
        .exists()
    ):
        raise ValidationError(
            {"id_number": [_("该身份证号已认证过其他分销商账户，一人只能认证一个账户")]}
        )
    from .services.blacklist import first_blacklist_match

    if first_blacklist_match(
        values=Q(kind=BlacklistKind.ID_NUMBER, value_index=index),
        ip=None,
        now=timezone.now(),
    ):
        raise ValidationError(_("该身份信息无法通过认证，请联系客服"))
    provider = provider or get_provider()
    try:
        result = provider.verify(facts)  # the network call, outside any transaction
    except RealNameProviderError:
        logger.warning(
            "riskcontrol.real_name_provider_unavailable",
            extra={"distributor": distributor.pk},
        )
        raise ValidationError(_("实名认证服务暂时不可用，请稍后再试")) from None
    key_id, blob = crypto.encrypt(
        json.dumps(facts.__dict__, ensure_ascii=False),
        associated_data=_associated_data(distributor.pk),
    )
    try:
        with transaction.atomic():
            verification = RealNameVerification.objects.create(
                distributor=distributor,
                status=RealNameStatus.VERIFIED
                if result.is_match
                else RealNameStatus.FAILED,
                name_mask=validators.mask_name(facts.name),
                id_number_mask=validators.mask_id_number(facts.id_number),
                id_number_index=index,
                bank_card_mask=validators.mask_bank_card(facts.bank_card),
                mobile_mask=validators.mask_mobile(facts.mobile),
                data_ciphertext=blob,
                data_key_id=key_id,
                provider=provider.code,
                provider_reference=result.reference[:64],
                failure_reason=result.message[:200],
            )
            record_audit(
                actor=distributor.user,
                action="riskcontrol.real_name_submitted",
                target=verification,
                changes={"status": [None, verification.status]},
            )
    except IntegrityError:  # verified twice at once: the first one stands
        return RealNameVerification.objects.get(
            distributor=distributor, status=RealNameStatus.VERIFIED
        )
    return verification


def reveal_real_name(verification: RealNameVerification) -> RealNameFacts:
    """For the payout or a provider re-check only; never for a page or a log."""
    plain = crypto.decrypt(
        key_id=verification.data_key_id,
        blob=verification.data_ciphertext,
        associated_data=_associated_data(verification.distributor_id),
    )
    return RealNameFacts(**json.loads(plain))
