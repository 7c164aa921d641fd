"""Is PostgreSQL / Redis answering at DATABASE_URL / REDIS_URL? Used by scripts/test.sh; and
``create-database``, used by scripts/run.sh: the database DATABASE_URL names, made if missing."""

import os
import sys
import time


def check_postgres() -> bool:
    import psycopg

    url = os.environ["DATABASE_URL"]
    # Connect to the maintenance database: the test database is created by the suite.
    base, _, _name = url.rpartition("/")
    try:
        psycopg.connect(f"{base}/postgres", connect_timeout=3).close()
        return True
    except psycopg.Error:
        return False


def create_database() -> int:
    """Create the database DATABASE_URL names when the server answers but lacks it, so a first
    real-mode ``make run`` needs no ``createdb``; an existing one is left alone."""
    from urllib.parse import unquote, urlsplit, urlunsplit

    import psycopg
    from psycopg import sql

    url = os.environ["DATABASE_URL"]
    parts = urlsplit(url)
    name = unquote(parts.path.lstrip("/"))
    if not name:
        print("DATABASE_URL names no database (…/NAME at the end).", file=sys.stderr)
        return 1
    try:
        connection = psycopg.connect(urlunsplit(parts._replace(path="/postgres")), connect_timeout=5)
    except psycopg.Error as error:
        print(f"PostgreSQL does not answer at {parts.hostname}:{parts.port or 5432}: {error}".strip(), file=sys.stderr)
        return 1
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            if cursor.fetchone() is None:
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                print(f"Created the database {name}.")
    except psycopg.Error as error:
        print(f"Cannot create the database {name}: {error}".strip(), file=sys.stderr)
        return 1
    finally:
        connection.close()
    return 0


def check_redis() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(os.environ["REDIS_URL"], socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


def main() -> int:
    command = sys.argv[1]
    if command == "check-postgres":
        return 0 if check_postgres() else 1
    if command == "create-database":
        return create_database()
    if command == "check-redis":
        return 0 if check_redis() else 1
    if command == "wait-redis":
        for _ in range(50):
            if check_redis():
                return 0
            time.sleep(0.1)
        return 1
    raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    sys.exit(main())
