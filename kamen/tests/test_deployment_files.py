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


SCALED_SERVICES = ("web", "celery-worker", "celery-worker-io", "celery-beat", "rq-worker")


def test_every_kamen_process_reaches_postgresql_through_pgbouncer_in_transaction_mode():
    """docs/adr/0015-beyond-one-machine.md: the pooler in front, migrations straight to PostgreSQL."""
    services = compose()["services"]
    pooler = services["pgbouncer"]
    version = tuple(int(part) for part in pooler["image"].split(":v")[1].split("-")[0].split(".")[:2])

    assert pooler["environment"]["POOL_MODE"] == "transaction"
    assert version >= (1, 21) and int(pooler["environment"]["MAX_PREPARED_STATEMENTS"]) > 0
    assert "@postgres:5432/" in pooler["environment"]["DATABASE_URL"]
    for name in (*SCALED_SERVICES, "storage-init"):
        environment = services[name]["environment"]
        assert "@pgbouncer:5432/" in environment["DATABASE_URL"], name
        assert environment["DATABASE_POOLED"] == "1", name
        assert "@postgres:5432/" in environment["DATABASE_DIRECT_URL"], name
    assert "@postgres:5432/" in services["migrate"]["environment"]["DATABASE_URL"]
    assert services["migrate"]["environment"]["DATABASE_POOLED"] == "0"


def test_the_scaled_services_have_no_fixed_name_or_host_port():
    services = compose()["services"]

    for name in (*SCALED_SERVICES, "pgbouncer", "postgres", "redis"):
        assert "container_name" not in services[name] and "ports" not in services[name], name
    for name in ("celery-worker", "celery-worker-io"):
        assert "@%h" in services[name]["command"], name  # a node name per container
