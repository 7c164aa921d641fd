"""Is PostgreSQL / Redis answering at DATABASE_URL / REDIS_URL? Used by scripts/test.sh."""

import os
import sys
import time


def check_postgres() -> bool:
    import psycopg2

    url = os.environ["DATABASE_URL"]
    # Connect to the maintenance database: the test database is created by the suite.
    base, _, _name = url.rpartition("/")
    try:
        psycopg2.connect(f"{base}/postgres", connect_timeout=3).close()
        return True
    except psycopg2.Error:
        return False


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
