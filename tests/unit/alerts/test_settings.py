import pytest
from pydantic import ValidationError

from ops.platform.config import Settings


def test_development_defaults_to_sqlite_and_embedded_redis(tmp_path):
    s = Settings(data_dir=tmp_path, _env_file=None, database_url=None, redis_url=None)
    assert s.sqlalchemy_url == f"sqlite:///{tmp_path.resolve()}/reunite.db"
    assert s.embedded_redis
    assert s.resolved_redis_url == f"unix://{tmp_path.resolve()}/redis.sock"
    assert s.broker_url == f"redis+socket://{tmp_path.resolve()}/redis.sock"


def test_postgres_url_gets_the_psycopg_driver():
    s = Settings(database_url="postgresql://u@db:5432/reunite", redis_url="redis://r:6379/0")
    assert s.sqlalchemy_url == "postgresql+psycopg://u@db:5432/reunite"
    assert s.broker_url == "redis://r:6379/0"


def test_a_redis_cluster_needs_a_plain_redis_as_celery_broker():
    with pytest.raises(ValidationError, match="CELERY_BROKER_URL"):
        Settings(redis_url="redis+cluster://n1:7000", celery_broker_url=None)
    with pytest.raises(ValidationError, match="plain Redis"):
        Settings(redis_url="redis://r:6379/0", celery_broker_url="redis+cluster://n1:7000")
    s = Settings(redis_url="redis+cluster://n1:7000", celery_broker_url="redis://b:6379/0")
    assert s.redis_cluster and s.broker_url == "redis://b:6379/0"
    assert not Settings(redis_url="redis://r:6379/0").redis_cluster


@pytest.mark.parametrize("secret", ["change-me", "secret", "short-but-not-placeholder"])
def test_production_refuses_placeholder_or_short_secrets(secret):
    with pytest.raises(ValidationError, match="REUNITE_SECRET_KEY"):
        Settings(
            mode="production",
            secret_key=secret,
            database_url="postgresql://u@db/r",
            redis_url="redis://r:6379/0",
        )


def test_production_needs_external_services():
    with pytest.raises(ValidationError, match="DATABASE_URL and REDIS_URL"):
        Settings(mode="production", secret_key="k" * 40, database_url=None, redis_url=None)


def test_production_with_real_secret_is_accepted():
    s = Settings(
        mode="production",
        secret_key="k" * 40,
        database_url="postgresql://u@db/r",
        redis_url="redis://r:6379/0",
        cap_signing_keys="/etc/reunite/cap-signing.pem",
    )
    assert not s.embedded_redis


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("public_base_url", "https://reunite.example", "REUNITE_PUBLIC_BASE_URL"),
        ("cap_sender", "alerts@reunite.example", "REUNITE_CAP_SENDER"),
        ("channels", {"deep_link_base": "https://Reunite.Example/c/"}, "DEEP_LINK_BASE"),
    ],
)
def test_production_refuses_the_reunite_example_placeholder(field, value, named):
    production = {
        "mode": "production",
        "secret_key": "k" * 40,
        "database_url": "postgresql://u@db/r",
        "redis_url": "redis://r:6379/0",
    }
    with pytest.raises(ValidationError, match=named):
        Settings(**production, **{field: value})
    Settings(**{field: value})  # development takes it


def test_links_and_cap_sender_follow_the_public_base_url():
    s = Settings(public_base_url="https://alerts.gz.example.gov.cn/")
    assert s.case_link_base == "https://alerts.gz.example.gov.cn/c/"
    assert s.cap_sender == "alerts@alerts.gz.example.gov.cn"
    assert Settings(channels={"deep_link_base": "app://reunite/c/"}).case_link_base == (
        "app://reunite/c/"
    )
