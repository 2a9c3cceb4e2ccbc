"""Access control ([access]): AE rules and user identity (PS3.7 D.3.3.7) at association
time, role permissions per DIMSE operation, with our client, DCMTK and pynetdicom; the
`triopacs user` and `triopacs ae` commands. Users and rules are written to the security
database before the node starts (the CLI test writes them through the CLI)."""

from __future__ import annotations


import attrs
import pytest
from dicom_samples import SeriesSpec, write_series
from peers import echoscu, storescu
from pydicom import Dataset

from triopacs import connect, open_node
from triopacs.config import AccessSettings
from triopacs.actors.node.activity import AssociationOpened, AssociationRejected
from triopacs.client.contexts import query_retrieve_contexts, storage_contexts_for
from triopacs.client.errors import AssociationRejected as Rejected
from triopacs.storage.access import AERule
from triopacs.storage.security_db import add_user, open_security_db, put_ae_rule

from .nodes import AE_TITLE, LOOPBACK, counts, node_config, peer, secure_scu

PASSWORD = "correct horse battery"


def seed(tmp_path: Path, *, users=(), rules=()) -> None:
    (tmp_path / "node").mkdir(parents=True, exist_ok=True)
    db = open_security_db(str(tmp_path / "node" / "security.sqlite"))
    for username, role in users:
        add_user(db, username, role, PASSWORD)
    for rule in rules:
        put_ae_rule(db, rule)
    db.close()


def _node(tmp_path, **options):
    """A node with [access] on (and `options` of that section)."""
    config = node_config(tmp_path / "node")
    return open_node(attrs.evolve(config, access=AccessSettings(enabled=True, **options)))


@pytest.fixture
def series(tmp_path):
    return write_series(tmp_path / "source", SeriesSpec(count=2, modality="CT", patient_id="ACC1"))


def query() -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.PatientID = "ACC1"
    ds.StudyInstanceUID = ""
    return ds


async def test_calling_aes_are_checked_against_their_rules(tmp_path):
    seed(tmp_path, rules=[
        AERule(ae_title="MODALITY", role="technologist"),
        AERule(ae_title="BANNED", allow=False),
        AERule(ae_title="ELSEWHERE", hosts=("10.0.0.0/8",), role="viewer"),
        AERule(ae_title="NEEDSUSER"),
    ])
    async with _node(tmp_path) as node:
        with node.subscribe(AssociationRejected, capacity=16) as rejected:
            for title, reason in (("STRANGER", 3), ("BANNED", 3), ("ELSEWHERE", 3), ("NEEDSUSER", 1)):
                with pytest.raises(Rejected) as refused:
                    async with connect(LOOPBACK, node.address.port, called_ae_title=AE_TITLE, calling_ae_title=title):
                        pass
                # Rejected permanent (1), by the service user (1), with the reason.
                assert (refused.value.result, refused.value.source, refused.value.reason) == (1, 1, reason), title
            whys = [(await rejected.receive()).reason for _ in range(4)]
        assert "no rule" in whys[0] and "denied" in whys[1] and "10.0.0.0/8" not in whys[2] and "user identity" in whys[3]
        # DCMTK too: echoscu from an AE without a rule is rejected, from MODALITY accepted.
        assert (await echoscu(peer(node), calling_ae="STRANGER")).returncode != 0
        (await echoscu(peer(node), calling_ae="MODALITY")).check()


async def test_user_identity_decides_what_an_association_may_do(tmp_path, series):
    seed(
        tmp_path,
        users=[("tech", "technologist"), ("reader", "viewer")],
        rules=[AERule(ae_title="WORKSTATION"), AERule(ae_title="MODALITY", role="viewer")],
    )
    async with _node(tmp_path) as node:
        port = node.address.port
        with node.subscribe(AssociationOpened, capacity=16) as opened:
            # A technologist stores; the association carries the user's name.
            async with connect(
                LOOPBACK, port, called_ae_title=AE_TITLE, calling_ae_title="WORKSTATION",
                contexts=storage_contexts_for(series.paths), username="tech", passcode=PASSWORD,
            ) as association:
                assert all([(await association.store(path)).ok for path in series.paths])
            assert (await opened.receive()).username == "tech"
        # A viewer may query but not store: refused, not authorized (0124).
        async with connect(
            LOOPBACK, port, called_ae_title=AE_TITLE, calling_ae_title="WORKSTATION",
            contexts=[*storage_contexts_for(series.paths), *query_retrieve_contexts()], username="reader", passcode=PASSWORD,
        ) as association:
            result = await association.store(series.paths[0])
            assert result.status == 0x0124
            matches = [m async for m in association.find(query(), level="STUDY")]
            assert len(matches) == 1
        # A wrong passcode, an unknown user: rejected (permanent, service user, no reason given).
        for username, passcode in (("tech", "wrong password"), ("nobody", PASSWORD)):
            with pytest.raises(Rejected) as refused:
                async with connect(LOOPBACK, port, called_ae_title=AE_TITLE, calling_ae_title="WORKSTATION", username=username, passcode=passcode):
                    pass
            assert (refused.value.result, refused.value.source, refused.value.reason) == (1, 1, 1)
        # MODALITY without an identity gets its rule's role (viewer): DCMTK's storescu is refused 0124.
        stored = await storescu(peer(node), series.paths, calling_ae="MODALITY")
        assert [status for _path, status in stored.responses] and all("0x124" in status for _path, status in stored.responses), stored.tool.describe()
        # DCMTK with a user identity: the technologist's rights.
        other = write_series(tmp_path / "more", SeriesSpec(count=1, modality="MR", patient_id="ACC2"))
        stored = await storescu(peer(node), other.paths, calling_ae="WORKSTATION", extra_args=["--user", "tech", "--password", PASSWORD])
        stored.check(expected=1)
        # pynetdicom asks for a positive response and gets one.
        result = await secure_scu(port, "--calling-ae", "WORKSTATION", "--user", "tech", "--passcode", PASSWORD)
        assert result["associated"] and result["identity_response"] is True and result["echo"] == 0
        result = await secure_scu(port, "--calling-ae", "WORKSTATION", "--user", "tech", "--passcode", "nope")
        assert result["rejected"]
        assert (await counts(node)).instances == 3


async def test_unknown_aes_may_come_with_a_user_identity_when_the_policy_says_so(tmp_path):
    seed(tmp_path, users=[("admin", "administrator")])
    async with _node(tmp_path, unknown_ae="identity") as node:
        async with connect(LOOPBACK, node.address.port, called_ae_title=AE_TITLE, calling_ae_title="ANYONE", username="admin", passcode=PASSWORD) as association:
            await association.echo()
        with pytest.raises(Rejected):
            async with connect(LOOPBACK, node.address.port, called_ae_title=AE_TITLE, calling_ae_title="ANYONE"):
                pass


def test_user_and_ae_commands(tmp_path, capsys, monkeypatch):
    """In-process (the commands' own trio.run): each would cost a second as a process."""
    from triopacs.cli import main
    from triopacs.storage.data_lock import DataDirectoryLock

    config = tmp_path / "node.toml"
    config.write_text(f'[node]\ndata_dir = "{tmp_path / "data"}"\n')
    monkeypatch.setenv("TRIOPACS_PASSWORD", PASSWORD)

    def run(*args: str) -> tuple[int, str, str]:
        status = main([*args, "--config", str(config)])
        out, err = capsys.readouterr()
        return status, out, err

    for args in (
        ["user", "add", "alice", "--role", "radiologist"],
        ["user", "add", "bob", "--role", "viewer"],
        ["user", "role", "bob", "technologist"],
        ["user", "passwd", "bob"],
        ["user", "remove", "alice"],
        ["ae", "allow", "CT1", "--host", "10.1.2.0/24", "--role", "technologist"],
        ["ae", "deny", "OLDPACS"],
    ):
        status, _out, err = run(*args)
        assert status == 0, (args, err)
    status, users, _err = run("user", "list")
    assert "bob" in users and "technologist" in users and "alice" not in users
    status, rules, _err = run("ae", "list")
    assert "CT1" in rules and "10.1.2.0/24" in rules and "OLDPACS" in rules and "deny" in rules
    # A short password, a bad network, a user twice, a user that is not there: one line each.
    monkeypatch.setenv("TRIOPACS_PASSWORD", "short")
    assert run("user", "passwd", "bob")[0] == 1
    assert run("ae", "allow", "CT2", "--host", "not-a-network")[2].count("not an address") == 1
    monkeypatch.setenv("TRIOPACS_PASSWORD", PASSWORD)
    assert "exists already" in run("user", "add", "bob", "--role", "viewer")[2]
    assert run("user", "remove", "nobody")[0] == 1
    # While a node holds the data directory the commands refuse (it owns the file).
    with DataDirectoryLock(tmp_path / "data"):
        status, _out, err = run("user", "add", "carol", "--role", "viewer")
    assert status == 2 and "stop it first" in err
    # The passwords stored are scrypt hashes, never the text.
    stored = open_security_db(str(tmp_path / "data" / "security.sqlite")).execute("SELECT password_hash FROM users").fetchall()
    assert stored and all(h.startswith("scrypt$") and PASSWORD not in h for (h,) in stored)
