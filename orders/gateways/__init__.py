"""Payment gateways: the sandbox Kamen ships, plus the real ones configured in settings."""

from .base import (  # noqa: F401
    GatewayError,
    MalformedNotification,
    PaymentGateway,
    PaymentNotification,
    PaymentOutcome,
    PaymentRequest,
    PaymentStart,
    RefundResult,
    SignatureInvalid,
)


class UnknownGateway(KeyError):
    pass


def available_gateways() -> dict[str, PaymentGateway]:
    """Every usable gateway by code: the sandbox (unless SANDBOX_GATEWAY_ENABLED is off, as in
    production), and the real ones when configured."""
    from django.conf import settings

    from .sandbox import SandboxGateway

    gateways: dict[str, PaymentGateway] = {}
    if settings.SANDBOX_GATEWAY_ENABLED:
        gateways[SandboxGateway.code] = SandboxGateway()
    try:
        from .configured import real_gateways_from_settings
    except ImportError:
        return gateways
    gateways.update(real_gateways_from_settings())
    return gateways


def get_gateway(code: str) -> PaymentGateway:
    try:
        return available_gateways()[code]
    except KeyError:
        raise UnknownGateway(code) from None
