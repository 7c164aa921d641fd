from unittest import mock

import pytest


@pytest.mark.django_db
def test_healthz_reports_every_part_ok(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"database": "ok", "broker": "ok", "cache": "ok", "degraded": [], "status": "ok"}


@pytest.mark.django_db
def test_with_the_broker_and_cache_down_the_shop_still_sells_and_healthz_says_what_is_degraded(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    }

    response = client.get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["database"], body["broker"], body["cache"]) == ("degraded", "ok", "error", "error")
    assert body["degraded"] == ["broker", "cache"]


@pytest.mark.django_db
def test_healthz_answers_503_when_the_database_is_down(client):
    with mock.patch("kamen.views.connection.cursor", side_effect=Exception("down")):
        response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["database"] == "error"
    assert response.json()["status"] == "error"
