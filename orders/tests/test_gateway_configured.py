"""Building the real gateways from settings: only the configured ones, never a half-configured one."""

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from django.core.exceptions import ImproperlyConfigured

from orders.gateways.alipay import AlipayGateway
from orders.gateways.configured import real_gateways_from_settings
from orders.gateways.wechatpay import WechatPayGateway

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PLATFORM_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PRIVATE_PEM = KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
PUBLIC_PEM = (
    KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
)
PLATFORM_PUBLIC_PEM = (
    PLATFORM_KEY.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)
API_V3_KEY = "a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb"

ALL_SETTINGS = (
    "ALIPAY_APP_ID",
    "ALIPAY_PRIVATE_KEY",
    "ALIPAY_PUBLIC_KEY",
    "ALIPAY_SELLER_ID",
    "ALIPAY_GATEWAY_URL",
    "WECHATPAY_APP_ID",
    "WECHATPAY_MCH_ID",
    "WECHATPAY_API_V3_KEY",
    "WECHATPAY_PRIVATE_KEY",
    "WECHATPAY_SERIAL_NO",
    "WECHATPAY_PLATFORM_CERTS",
    "WECHATPAY_API_BASE",
)


@pytest.fixture
def gateway_settings(settings):
    """Start from a deployment with no gateway configured, whatever the environment says."""
    for name in ALL_SETTINGS:
        setattr(settings, name, "")
    return settings


def platform_certificate_pem(serial: int) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(PLATFORM_KEY.public_key())
        .serial_number(serial)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .sign(PLATFORM_KEY, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def configure_alipay(settings, tmp_path):
    key_file = tmp_path / "alipay_app_private_key.pem"
    key_file.write_text(PRIVATE_PEM)
    settings.ALIPAY_APP_ID = "2021004100000001"
    settings.ALIPAY_PRIVATE_KEY = str(key_file)
    settings.ALIPAY_PUBLIC_KEY = PUBLIC_PEM.replace("\n", "\\n")  # one line, as an env file holds it


def configure_wechatpay(settings, tmp_path):
    key_file = tmp_path / "apiclient_key.pem"
    key_file.write_text(PRIVATE_PEM)
    certificate_file = tmp_path / "wechatpay_platform.pem"
    certificate_file.write_text(platform_certificate_pem(0x5157F09EFDC096DE15EBE81A47057A7232F1B8E1))
    public_key_file = tmp_path / "pub_key.pem"
    public_key_file.write_text(PLATFORM_PUBLIC_PEM)
    settings.WECHATPAY_APP_ID = "wxd678efh567hg6787"
    settings.WECHATPAY_MCH_ID = "1230000109"
    settings.WECHATPAY_API_V3_KEY = API_V3_KEY
    settings.WECHATPAY_PRIVATE_KEY = str(key_file)
    settings.WECHATPAY_SERIAL_NO = "444F4864EA9B34415C4E6F1E76D3C83E4E6A1C2B"
    settings.WECHATPAY_PLATFORM_CERTS = f"{certificate_file}, PUB_KEY_ID_0112345678901234={public_key_file}"


def test_no_settings_means_no_real_gateway(gateway_settings):
    assert real_gateways_from_settings() == {}


def test_both_gateways_are_built_from_complete_settings(gateway_settings, tmp_path):
    # given both gateways fully configured, keys as files and as one-line PEM
    configure_alipay(gateway_settings, tmp_path)
    configure_wechatpay(gateway_settings, tmp_path)
    gateway_settings.ALIPAY_GATEWAY_URL = "https://openapi-sandbox.dl.alipaydev.com/gateway.do"

    # when the gateways are built
    gateways = real_gateways_from_settings()

    # then both are there, with the certificate's serial read from the certificate itself
    assert isinstance(gateways["alipay"], AlipayGateway)
    assert gateways["alipay"].gateway_url == "https://openapi-sandbox.dl.alipaydev.com/gateway.do"
    assert isinstance(gateways["wechatpay"], WechatPayGateway)
    assert set(gateways["wechatpay"].platform_keys) == {
        "5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
        "PUB_KEY_ID_0112345678901234",
    }


def test_only_the_configured_gateway_is_built(gateway_settings, tmp_path):
    configure_wechatpay(gateway_settings, tmp_path)

    assert list(real_gateways_from_settings()) == ["wechatpay"]


@pytest.mark.parametrize(
    "missing",
    ["WECHATPAY_APP_ID", "WECHATPAY_MCH_ID", "WECHATPAY_API_V3_KEY", "WECHATPAY_SERIAL_NO", "WECHATPAY_PLATFORM_CERTS"],
)
def test_a_half_configured_wechatpay_names_the_missing_setting(gateway_settings, tmp_path, missing):
    configure_wechatpay(gateway_settings, tmp_path)
    setattr(gateway_settings, missing, "")

    with pytest.raises(ImproperlyConfigured, match=missing):
        real_gateways_from_settings()


def test_a_half_configured_alipay_names_the_missing_setting(gateway_settings):
    gateway_settings.ALIPAY_APP_ID = "2021004100000001"
    gateway_settings.ALIPAY_PRIVATE_KEY = PRIVATE_PEM

    with pytest.raises(ImproperlyConfigured, match="ALIPAY_PUBLIC_KEY"):
        real_gateways_from_settings()


def test_an_unreadable_key_is_named_but_never_shown(gateway_settings, tmp_path):
    # given a private key that was truncated when pasted
    configure_alipay(gateway_settings, tmp_path)
    broken = PRIVATE_PEM[:400]
    gateway_settings.ALIPAY_PRIVATE_KEY = broken

    with pytest.raises(ImproperlyConfigured, match="ALIPAY_PRIVATE_KEY") as raised:
        real_gateways_from_settings()

    assert broken[30:80] not in str(raised.value)


def test_a_public_key_given_as_the_private_key_is_refused(gateway_settings, tmp_path):
    configure_alipay(gateway_settings, tmp_path)
    gateway_settings.ALIPAY_PRIVATE_KEY = PUBLIC_PEM

    with pytest.raises(ImproperlyConfigured, match="ALIPAY_PRIVATE_KEY"):
        real_gateways_from_settings()


def test_a_missing_key_file_is_named(gateway_settings, tmp_path):
    configure_wechatpay(gateway_settings, tmp_path)
    gateway_settings.WECHATPAY_PRIVATE_KEY = str(tmp_path / "nowhere.pem")

    with pytest.raises(ImproperlyConfigured, match="WECHATPAY_PRIVATE_KEY"):
        real_gateways_from_settings()


def test_an_api_v3_key_of_the_wrong_length_is_refused_without_showing_it(gateway_settings, tmp_path):
    configure_wechatpay(gateway_settings, tmp_path)
    gateway_settings.WECHATPAY_API_V3_KEY = "not-thirty-two-bytes-secret"

    with pytest.raises(ImproperlyConfigured, match="WECHATPAY_API_V3_KEY") as raised:
        real_gateways_from_settings()

    assert "not-thirty-two-bytes-secret" not in str(raised.value)


def test_a_platform_public_key_without_its_id_is_refused(gateway_settings, tmp_path):
    configure_wechatpay(gateway_settings, tmp_path)
    public_key_file = tmp_path / "bare_pub_key.pem"
    public_key_file.write_text(PLATFORM_PUBLIC_PEM)
    gateway_settings.WECHATPAY_PLATFORM_CERTS = str(public_key_file)

    with pytest.raises(ImproperlyConfigured, match="PUB_KEY_ID"):
        real_gateways_from_settings()
