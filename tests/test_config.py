import tomllib

import pytest

from triopacs.actors.node.ae_registry import RemoteAE
from triopacs.config import SECTIONS, Config, ConfigError, from_mapping, load_config
from triopacs.config_toml import default_toml


def test_default_toml_round_trips_through_the_loader(tmp_path):
    path = tmp_path / "triopacs.toml"
    path.write_text(default_toml())
    assert load_config(path, environ={}) == Config()


def test_every_setting_appears_in_the_default():
    text = default_toml()
    parsed = tomllib.loads(text)
    assert parsed["node"]["ae_title"] == "TRIOPACS" and parsed["node"]["port"] == 11112
    assert set(parsed) == set(SECTIONS)
    assert "# [[remote]]" in text


def test_file_then_environment_then_flags(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[node]\nport = 4000\nae_title = "FROMFILE"\n[[remote]]\nae_title = "VIEW"\nhost = "127.0.0.1"\nport = 104\n')
    config = load_config(path, environ={"TRIOPACS_NODE_PORT": "5000", "TRIOPACS_LOG_LEVEL": "debug"})
    assert (config.node.port, config.node.ae_title, config.log.level) == (5000, "FROMFILE", "debug")
    assert config.remote == (RemoteAE(ae_title="VIEW", host="127.0.0.1", port=104),)
    config = load_config(path, environ={"TRIOPACS_NODE_PORT": "5000"}, overrides={"node": {"port": 6000}})
    assert config.node.port == 6000


@pytest.mark.parametrize(
    "data,key,fragment",
    [
        ({"node": {"port": 70000}}, "node.port", "between 0 and 65535"),
        ({"node": {"port": "eleven"}}, "node.port", "an integer"),
        ({"node": {"port": True}}, "node.port", "an integer"),
        ({"node": {"ae_title": "THIS_TITLE_IS_TOO_LONG"}}, "node.ae_title", "1 to 16"),
        ({"node": {"colour": "blue"}}, "node.colour", "known keys are"),
        ({"log": {"format": "xml"}}, "log.format", "auto, console, json"),
        ({"nodes": {}}, "nodes", "unknown section"),
        ({"remote": [{"ae_title": "A", "host": "h", "port": 0}]}, "remote", "between 1 and 65535"),
        ({"remote": [{"ae_title": "A", "host": "h"}]}, "remote[0]", "ae_title, host and port"),
        ({"remote": [{"ae_title": "A", "host": "h", "port": 1, "tls": "yes"}]}, "remote[0].tls", "true or false"),
        ({"tls": {"enabled": True}}, "tls.cert_file", "cert_file and key_file"),
        ({"tls": {"require_client_certificate": True, "cert_file": "a", "key_file": "b"}}, "tls.ca_file", "client certificates"),
        ({"tls": {"min_version": "1.1"}}, "tls.min_version", "1.2 or 1.3"),
        ({"access": {"unknown_ae": "allow"}}, "access.unknown_ae", "reject, identity"),
        ({"audit": {"sync": "never"}}, "audit.sync", "fsync, os"),
    ],
)
def test_errors_name_key_value_and_what_is_allowed(data, key, fragment):
    with pytest.raises(ConfigError) as info:
        from_mapping(data)
    assert info.value.key == key
    assert fragment in str(info.value)
    assert str(info.value).startswith(f"{key} = ")


def test_environment_errors_name_the_variable():
    with pytest.raises(ConfigError, match="TRIOPACS_NODE_PROT"):
        load_config(environ={"TRIOPACS_NODE_PROT": "1"})
    with pytest.raises(ConfigError, match="node.port = 'abc'|TRIOPACS_NODE_PORT"):
        load_config(environ={"TRIOPACS_NODE_PORT": "abc"})


def test_missing_or_broken_file(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.toml", environ={})
    broken = tmp_path / "broken.toml"
    broken.write_text("[node\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken, environ={})


def test_components_take_their_settings_from_the_sections_by_name():
    """The supervisor builds the lock manager's, scheduler's and built-in tasks' settings
    from their sections by field name: every field must be found, with its value."""
    from triopacs.config import LockSettings, from_section
    from triopacs.supervisor import builtin_tasks, lock_manager_config, scheduler_config
    from triopacs.workflow.locks.types import LockManagerConfig

    config = Config(locks=LockSettings(max_shared_locks=7, acquire_wait_timeout=2.5))
    assert lock_manager_config(config) == LockManagerConfig(max_shared_locks=7, acquire_wait_timeout=2.5)
    assert scheduler_config(config).history_limit == config.scheduler.history_limit
    cleanup, verification, expiry, archive, migration = builtin_tasks(config)
    assert archive.kind == "archive" and not archive.enabled
    assert migration.kind == "migration" and not migration.enabled
    assert cleanup.params["max_deletions_per_cycle"] == config.cleanup.max_deletions_per_cycle
    assert verification.params["hash_algorithm"] == "SHA256"
    assert expiry.kind == "worklist-expiry" and expiry.schedule == config.worklist.expiry_schedule and expiry.enabled

    class Partial:
        default_timeout = 1.0

    with pytest.raises(TypeError, match="LockManagerConfig.acquire_wait_timeout has no setting in Partial"):
        from_section(LockManagerConfig, Partial())


def test_tier_tables_are_read_strictly():
    from triopacs.config import from_mapping
    from triopacs.storage.s3 import S3Settings

    config = from_mapping({
        "hsm": {"warm_tier": "warm", "cold_tier": "cold"},
        "tier": [
            {"name": "warm", "kind": "local", "path": "/mnt/warm"},
            {"name": "cold", "kind": "s3", "prefix": "cold/", "bucket": "b", "part_size": 8388608, "read_timeout": 5},
        ],
    })
    assert [t.name for t in config.tier] == ["warm", "cold"]
    assert isinstance(config.tier[1].settings, S3Settings) and config.tier[1].settings.read_timeout == 5.0
    bad = {
        "tier[0].buckett": [{"name": "c", "kind": "s3", "bucket": "b", "buckett": "x"}],
        "tier[0].bucket": [{"name": "c", "kind": "s3"}],
        "tier[0].name": [{"name": "local", "kind": "local", "path": "/x"}],
        "tier[0].kind": [{"name": "c", "kind": "tape"}],
        "tier[0].prefix": [{"name": "c", "kind": "local", "path": "/x", "prefix": "../up/"}],
        "tier[0].part_size": [{"name": "c", "kind": "s3", "bucket": "b", "part_size": "big"}],
    }
    for key, tiers in bad.items():
        with pytest.raises(ConfigError) as error:
            from_mapping({"tier": tiers})
        assert error.value.key == key, str(error.value)
    with pytest.raises(ConfigError, match="hsm.warm_tier"):
        from_mapping({"hsm": {"warm_tier": "nowhere"}})
    with pytest.raises(ConfigError, match="once"):
        from_mapping({"tier": [{"name": "a", "kind": "local", "path": "/x"}] * 2})


def test_security_sections_and_a_tls_remote(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(
        '[tls]\nenabled = true\ncert_file = "n.pem"\nkey_file = "n.key"\nca_file = "ca.pem"\nrequire_client_certificate = true\n'
        '[access]\nenabled = true\nunknown_ae = "identity"\n[audit]\nenabled = true\nsync = "os"\n'
        '[[remote]]\nae_title = "SECURE"\nhost = "pacs.example"\nport = 2762\ntls = true\n'
    )
    config = load_config(path, environ={"TRIOPACS_PASSWORD": "not a setting"})
    assert config.tls.enabled and config.tls.port == 2762 and config.tls.require_client_certificate
    assert config.access.unknown_ae == "identity" and config.audit.sync == "os"
    assert config.remote == (RemoteAE(ae_title="SECURE", host="pacs.example", port=2762, tls=True),)
    # Off by default: an embedded node without these sections is as open as before.
    assert not (Config().tls.enabled or Config().access.enabled or Config().audit.enabled)
