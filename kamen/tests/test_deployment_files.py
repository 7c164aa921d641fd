"""docker-compose.yml cannot be started on the CI machine; these checks keep its shape right:
the proxy in front of every web container, no host port on web, the trusted-proxy setting equal
to the compose network, and the same public address and object store for every Kamen service."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
KAMEN_SERVICES = ("web", "celery-worker", "celery-beat", "rq-worker", "migrate", "storage-init")


def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_the_proxy_is_the_only_way_in_and_web_scales():
    services = compose()["services"]

    assert "ports" not in services["web"] and "container_name" not in services["web"]
    assert {"80:80", "443:443"} <= set(services["proxy"]["ports"])
    assert "./deploy/Caddyfile:/etc/caddy/Caddyfile:ro" in services["proxy"]["volumes"]
    assert "dynamic a web 8000" in (ROOT / "deploy" / "Caddyfile").read_text()


def test_every_kamen_service_shares_the_site_address_the_store_and_trusts_only_the_network():
    document = compose()
    subnet = document["networks"]["default"]["ipam"]["config"][0]["subnet"]

    for name in KAMEN_SERVICES:
        environment = document["services"][name]["environment"]
        assert environment["SITE_URL"].startswith("https://"), name
        assert environment["KAMEN_TRUSTED_PROXIES"] == subnet, name
        assert environment["KAMEN_S3_ENDPOINT_URL"] == "http://seaweedfs:8333", name
        assert "volumes" not in document["services"][name], name  # nothing on a host's own disk
