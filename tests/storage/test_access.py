"""Roles, passwords and AE rules as pure values (storage/access.py) and the security
database's functions (storage/security_db.py), without a node."""

from __future__ import annotations

import pytest

from triopacs.storage.access import (
    ROLES, AERule, check_password, hash_password, hosts_error, password_error, username_error,
)
from triopacs.storage.security_db import (
    SecurityInputError, add_user, list_ae_rules, list_users, open_security_db, put_ae_rule, remove_user, set_password,
)


def test_password_hashes_check_and_carry_their_parameters():
    stored = hash_password("correct horse", n=1 << 10)
    assert stored.startswith("scrypt$1024$8$1$") and "correct horse" not in stored
    assert check_password("correct horse", stored)
    assert not check_password("correct horsE", stored)
    assert hash_password("same") != hash_password("same")  # salted
    for broken in ("", "scrypt$", "md5$1$2$3$AAAA$AAAA", "scrypt$x$8$1$AAAA$AAAA", "scrypt$1024$8$1$!!$??"):
        assert not check_password("anything", broken)


def test_names_passwords_and_hosts_are_checked():
    assert username_error("alice.smith@ward-3") is None
    for bad in ("", "a b", "x" * 65, "tab\t", "../etc", "ümlaut"):
        assert username_error(bad) is not None
    assert password_error("short") and password_error("x" * 2000) and password_error("long enough") is None
    assert hosts_error(["10.0.0.0/8", "192.168.1.7", "::1"]) is None
    assert hosts_error(["10.0.0.0/33"]) and hosts_error(["example.org"])


def test_ae_rules_admit_hosts_by_address_or_network():
    rule = AERule(ae_title="CT1", hosts=("10.1.2.0/24", "::1"))
    assert rule.admits_host("10.1.2.77") and rule.admits_host("::1")
    assert not rule.admits_host("10.1.3.1") and not rule.admits_host("not-an-address") and not rule.admits_host("")
    assert AERule(ae_title="ANY").admits_host("203.0.113.9")


def test_roles_grow_from_viewer_to_administrator():
    assert ROLES["viewer"] < ROLES["technologist"] < ROLES["administrator"]
    assert ROLES["radiologist"] < ROLES["administrator"] and "delete" not in ROLES["radiologist"]


def test_the_security_database(tmp_path):
    db = open_security_db(str(tmp_path / "security.sqlite"))
    add_user(db, "alice", "viewer", "password one")
    with pytest.raises(SecurityInputError, match="exists"):
        add_user(db, "alice", "viewer", "password one")
    with pytest.raises(SecurityInputError, match="unknown role"):
        add_user(db, "bob", "superuser", "password one")
    before = list_users(db)[0].password_hash
    set_password(db, "alice", "password two")
    assert list_users(db)[0].password_hash != before and check_password("password two", list_users(db)[0].password_hash)
    with pytest.raises(SecurityInputError, match="no user"):
        set_password(db, "nobody", "password two")
    put_ae_rule(db, AERule(ae_title="CT1", hosts=("10.0.0.0/8",), role="technologist"))
    put_ae_rule(db, AERule(ae_title="CT1", allow=False))  # replaces
    assert list_ae_rules(db) == [AERule(ae_title="CT1", allow=False)]
    assert remove_user(db, "alice") and not remove_user(db, "alice")
