"""init_mother() from INI files, mappings and keywords; ConfigError for every bad setting."""

from __future__ import annotations

from pathlib import Path

import pytest

import mother
from mother import ConfigError, close_all, get_database, init_mother
from mother.config import ini_databases, make_settings, spelled_as


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("MOTHER_DSN", raising=False)
    monkeypatch.delenv("MOTHER_POOLER", raising=False)
    yield
    close_all()


def write_ini(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mother.ini"
    path.write_text(text)
    return path


def test_init_from_ini_default_section(tmp_path: Path) -> None:
    ini = write_ini(tmp_path, f"[mother]\ndsn = sqlite:///{tmp_path}/a.db\npool_min = 2\n"
                              "pool_max = 7\npool_type = elastic\nparanoid = yes\n")
    database = init_mother(ini)
    assert get_database() is database
    assert database.settings.pool_min == 2
    assert database.settings.pool_max == 7
    assert database.settings.pool_type == "elastic"
    assert database.settings.paranoid is True
    assert database.dialect.name == "sqlite"


def test_init_from_ini_named_section(tmp_path: Path, pg_dsns: list[str]) -> None:
    ini = write_ini(tmp_path, f"[mother]\ndsn = sqlite:///{tmp_path}/a.db\n\n"
                              f"[mother:other]\ndsn = {pg_dsns[1]}\nsession_name = Other\n")
    other = init_mother(ini, name="other")
    assert get_database("other") is other
    assert other.dialect.name == "postgresql"
    assert other.settings.session_name == "Other"
    with pytest.raises(ConfigError):
        get_database("default")


def test_ini_missing_named_section_falls_back_to_mother(tmp_path: Path) -> None:
    ini = write_ini(tmp_path, f"[mother]\ndsn = sqlite:///{tmp_path}/a.db\n")
    assert init_mother(ini, name="x").settings.dsn == f"sqlite:///{tmp_path}/a.db"


def test_ini_without_section_names_the_file(tmp_path: Path) -> None:
    ini = write_ini(tmp_path, "[other]\ndsn = sqlite://\n")
    with pytest.raises(ConfigError) as info:
        init_mother(ini)
    assert info.value.key == "config" and info.value.value == str(ini)
    assert "[mother]" in str(info.value)


def test_missing_ini_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        init_mother(tmp_path / "nope.ini")
    assert str(tmp_path / "nope.ini") in str(info.value)


def test_init_from_mapping_and_keywords_override(tmp_path: Path) -> None:
    database = init_mother({"dsn": "sqlite://", "pool_max": "3", "pool_timeout": "2.5"},
                           pool_max=5, persistent_one="off")
    assert database.settings.pool_max == 5
    assert database.settings.pool_timeout == 2.5
    assert database.settings.persistent_one is False


def test_keywords_override_ini(tmp_path: Path) -> None:
    ini = write_ini(tmp_path, "[mother]\ndsn = sqlite://\npool_max = 3\n")
    assert init_mother(ini, pool_max=9).settings.pool_max == 9


def test_defaults() -> None:
    settings = make_settings(dsn="sqlite://")
    assert (settings.pool_min, settings.pool_max, settings.pool_timeout) == (4, 10, 15.0)
    assert settings.pool_type == "limited"
    assert settings.persistent_one is True
    assert settings.session_name == "MoSession"
    assert settings.twophase is None
    assert settings.paranoid is False
    assert settings.prepare_threshold == 5
    assert settings.schema_check is None and settings.recover_min_age == 5.0


@pytest.mark.parametrize(("value", "expected"), [("0", 0), (3, 3), ("off", None), (None, None)])
def test_prepare_threshold(value: object, expected: int | None) -> None:
    assert make_settings(dsn="sqlite://", prepare_threshold=value).prepare_threshold == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("30", 30.0), (0.5, 0.5), ("off", None), ("0", None), ("", None), (None, None)])
def test_schema_check_is_seconds_or_off(value: object, expected: float | None) -> None:
    assert make_settings(dsn="sqlite://", schema_check=value).schema_check == expected


def test_mother_dsn_fallback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MOTHER_DSN", f"sqlite:///{tmp_path}/env.db")
    assert init_mother().settings.dsn == f"sqlite:///{tmp_path}/env.db"
    # an explicit dsn wins over the environment
    assert init_mother(dsn="sqlite://").settings.dsn == "sqlite://"


@pytest.mark.parametrize(("value", "expected"), [
    (None, None), ("", None), ("none", None), ("pgbouncer-transaction", "pgbouncer-transaction"),
    (" PgBouncer-Transaction ", "pgbouncer-transaction")])
def test_pooler(value: object, expected: str | None) -> None:
    settings = make_settings(dsn="sqlite://", pooler=value)
    assert settings.pooler == expected
    assert settings.prepare_threshold == (5 if expected is None else None)


def test_behind_a_pooler_nothing_may_be_prepared(tmp_path: Path) -> None:
    assert make_settings(dsn="sqlite://", pooler="pgbouncer-transaction",
                         prepare_threshold="off").prepare_threshold is None
    with pytest.raises(ConfigError, match="must be off with pooler = pgbouncer") as info:
        make_settings(dsn="sqlite://", pooler="pgbouncer-transaction", prepare_threshold=5)
    assert (info.value.key, info.value.value) == ("prepare_threshold", 5)
    ini = write_ini(tmp_path, "[mother]\ndsn = sqlite://\npooler = pgbouncer-transaction\n")
    assert make_settings(ini).pooler == "pgbouncer-transaction"


def test_mother_pooler_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOTHER_POOLER", "pgbouncer-transaction")
    assert make_settings(dsn="sqlite://").pooler == "pgbouncer-transaction"
    assert make_settings(dsn="sqlite://", pooler="none").pooler is None  # explicit wins
    monkeypatch.setenv("MOTHER_POOLER", "odyssey")
    with pytest.raises(ConfigError) as info:
        make_settings(dsn="sqlite://")
    assert (info.value.key, info.value.value) == ("pooler", "odyssey")


def test_missing_dsn_names_the_key() -> None:
    with pytest.raises(ConfigError) as info:
        init_mother()
    assert info.value.key == "dsn"
    assert "MOTHER_DSN" in str(info.value)


BAD = [
    ("pool_min", "many"), ("pool_min", -1), ("pool_max", "ten"), ("pool_max", 0),
    ("pool_timeout", "soon"), ("pool_timeout", 0), ("pool_timeout", -3),
    ("pool_type", "huge"), ("persistent_one", "maybe"), ("twophase", "perhaps"),
    ("paranoid", 7), ("session_name", ""), ("session_name", 12), ("autoflush", "sometimes"),
    ("busy_timeout", "x"), ("pool_idle", -1), ("prepare_threshold", "soon"),
    ("prepare_threshold", -1), ("colour", "blue"), ("schema_check", "often"),
    ("schema_check", -5), ("recover_min_age", 0), ("recover_min_age", "later"),
    ("prepare_threshold", -1), ("colour", "blue"), ("pooler", "pgbouncer"),
    ("pooler", "pgbouncer-session"), ("pooler", 1),
    ("dsn", "mysql://x"), ("dsn", "sqlite:relative.db"), ("dsn", "host='unterminated"),
    ("replicas", 3), ("replicas", "host=replica"), ("replica_max_lag", "x"),
    ("replica_max_lag", 0), ("replica_wait", "soon"), ("replica_check", -1),
]


@pytest.mark.parametrize(("key", "value"), BAD)
def test_bad_setting_names_key_and_value(key: str, value: object) -> None:
    settings = {"dsn": "sqlite://", key: value}
    with pytest.raises(ConfigError) as info:
        init_mother(settings)
    assert info.value.key == key
    assert repr(key) in str(info.value)
    assert repr(value) in str(info.value) or str(value) in str(info.value)
    assert isinstance(info.value, mother.MotherError)


def test_replicas_are_read_from_lists_lines_and_uris(tmp_path: Path) -> None:
    ini = tmp_path / "replicas.ini"
    ini.write_text("[mother]\ndsn = host=primary\nreplicas =\n    host=r1 port=5433\n"
                   "    postgresql://r2/db postgresql://r3,r4/db,postgresql://r5/db\n"
                   "replica_max_lag = 2.5\nreplica_wait = off\n")
    settings = make_settings(ini)
    assert settings.replicas == ("host=r1 port=5433", "postgresql://r2/db",
                                 "postgresql://r3,r4/db", "postgresql://r5/db")
    assert (settings.replica_max_lag, settings.replica_wait) == (2.5, None)
    assert make_settings(dsn="host=p", replicas=["host=r1", " host=r2 "]).replicas == (
        "host=r1", "host=r2")
    assert make_settings(dsn="host=p").replicas == ()


def test_the_primary_is_not_its_own_replica() -> None:
    with pytest.raises(ConfigError, match="primary's own dsn") as info:
        make_settings(dsn="host=p", replicas=["host=p"])
    assert info.value.key == "replicas"


def test_pool_max_below_pool_min() -> None:
    with pytest.raises(ConfigError) as info:
        init_mother(dsn="sqlite://", pool_min=5, pool_max=2)
    assert info.value.key == "pool_max" and info.value.value == 2


def test_bad_setting_in_ini_names_key_and_value(tmp_path: Path) -> None:
    ini = write_ini(tmp_path, "[mother]\ndsn = sqlite://\npool_type = bouncy\n")
    with pytest.raises(ConfigError) as info:
        init_mother(ini)
    assert (info.value.key, info.value.value) == ("pool_type", "bouncy")


def test_failed_init_keeps_the_previous_database() -> None:
    first = init_mother(dsn="sqlite://")
    with pytest.raises(ConfigError):
        init_mother(dsn="sqlite://", pool_type="nope")
    assert get_database() is first


def test_get_database_unknown_name() -> None:
    with pytest.raises(ConfigError) as info:
        get_database("ghost")
    assert info.value.value == "ghost"


def test_config_error_carries_setting_value_and_reason() -> None:
    with pytest.raises(ConfigError) as info:
        make_settings(dsn="sqlite://", pool_type="a: b")
    error = info.value
    assert (error.key, error.value) == ("pool_type", "a: b")
    assert error.reason == "expected one of ('limited', 'elastic', 'growing')"
    assert str(error) == f"setting 'pool_type' = 'a: b': {error.reason}"


def test_spelled_as_names_the_setting_the_adapter_s_way(tmp_path: Path) -> None:
    """From the error's attributes: the value and reason stay as they were, whatever they
    hold (a value with ': ' in it once fooled a parser of the message)."""
    with pytest.raises(ConfigError) as info, spelled_as(lambda key: f"app.{key}"):
        make_settings({"dsn": "sqlite://", "pool_type": "a: b"})
    assert (info.value.key, info.value.value) == ("app.pool_type", "a: b")
    assert info.value.reason == "expected one of ('limited', 'elastic', 'growing')"
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_spelled_as_leaves_other_errors_alone(tmp_path: Path) -> None:
    missing = tmp_path / "missing.ini"
    with pytest.raises(ConfigError) as info, spelled_as(lambda key: f"app.{key}"):
        make_settings(missing)
    assert (info.value.key, info.value.value) == ("config", str(missing))
    with pytest.raises(ConfigError) as info, spelled_as(str.upper, keys={"colour"}):
        make_settings({"dsn": "sqlite://", "colour": "blue", "pool_max": "x"})
    assert info.value.key == "COLOUR"  # unknown settings are refused before any value
    with pytest.raises(ValueError, match="not a ConfigError"), spelled_as(str.upper):
        raise ValueError("not a ConfigError")


def test_ini_databases_lists_the_sections_init_mother_reads(tmp_path: Path) -> None:
    ini = write_ini(tmp_path, "[app:main]\nuse = x\n\n[mother]\ndsn = sqlite://\n\n"
                              "[mother:archive]\ndsn = sqlite://\n")
    assert ini_databases(ini) == ["default", "archive"]
    with pytest.raises(ConfigError) as info:
        ini_databases(tmp_path / "missing.ini")
    assert (info.value.key, info.value.reason) == ("config", "file not found or unreadable")
