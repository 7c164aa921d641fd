FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=kamen.settings.production \
    KAMEN_VAR_DIR=/var/lib/kamen MEDIA_ROOT=/var/lib/kamen/media STATIC_ROOT=/app/staticfiles

RUN apt-get update && apt-get install -y --no-install-recommends fonts-noto-cjk curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /app kamen && mkdir -p /var/lib/kamen/media && chown -R kamen /var/lib/kamen

WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# collectstatic needs settings but no real secrets or services.
RUN SECRET_KEY=build-only-$(python -c 'print("x"*60)') DATABASE_URL=postgres://build/none REDIS_URL=redis://build:6379/0 SITE_URL=https://build.invalid \
    python manage.py collectstatic --noinput -v0

USER kamen
EXPOSE 8000
CMD ["gunicorn", "kamen.wsgi:application", "--bind", "0.0.0.0:8000", "--worker-class", "gthread", "--workers", "3", "--threads", "4", "--access-logfile", "-"]
