"""The scheduler (celery-redbeat) finds its own settings: no warning at every beat start that it
falls back to the broker's URL and options, which reads as a misconfiguration."""

import logging
import warnings

from redbeat.schedulers import RedBeatConfig

from kamen.celery import app


def test_redbeat_reads_its_settings_without_falling_back_to_the_broker(settings, caplog):
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        config = RedBeatConfig(app)

    assert config.redis_url == settings.REDIS_URL
    assert config.key_prefix.startswith(settings.CELERY_REDBEAT_KEY_PREFIX)
    assert config.lock_timeout == settings.CELERY_REDBEAT_LOCK_TIMEOUT
    falling_back = [str(w.message) for w in caught] + [r.getMessage() for r in caplog.records]
    assert not [message for message in falling_back if "falling back" in message]
