"""DICOM TLS (PS3.15 Annex B): the node's TLS port with our client, DCMTK's and
pynetdicom's; refusals of bad certificates, plain TCP and stalled handshakes, each
logged and published while the node keeps serving; our SCU side over TLS to DCMTK's
storescp +tls (C-MOVE to a [[remote]] marked tls, the CLI's --tls).

Certificates come from tests/peers/certificates.py, made once per session.
"""

from __future__ import annotations

import os
import ssl

import attrs
import pytest
import trio
from cli_process import run_cli
from pydicom import Dataset
from dicom_samples import SeriesSpec, write_series
from peers import run_dcmtk, storescu
from peers.dicom_servers import storescp

from triopacs import connect, open_node
from triopacs.config import AuditSettings, TlsSettings
from triopacs.storage.audit_log import entries
from triopacs.actors.node.activity import AssociationOpened, TlsRefused
from triopacs.actors.node.ae_registry import RemoteAE
from triopacs.client.contexts import storage_contexts_for
from triopacs.client.errors import ClientError, ConnectionFailed
from triopacs.client.tls import client_context

from .nodes import AE_TITLE, LOOPBACK, Address, counts, node_config, secure_scu



def tls_settings(files, **more):
    return {
        "enabled": True, "port": 0, "cert_file": str(files.server_cert), "key_file": str(files.server_key),
        "ca_file": str(files.ca), "require_client_certificate": True, **more,
    }


def secure_node(tmp_path, files, **options):
    """A node with TLS on (its port 0: picked), client certificates required; `tls`
    overrides [tls] settings (node_config takes settings by a name that must be unique,
    and [tls] shares port and enabled with other sections)."""
    tls = tls_settings(files, **options.pop("tls", {}))
    audit = AuditSettings(enabled=options.pop("audit", False))
    config = node_config(tmp_path / "node", **options)
    return open_node(attrs.evolve(config, tls=TlsSettings(**tls), audit=audit))


def ours(files, *, cert=None, key=None, ca=None) -> ssl.SSLContext:
    return client_context(
        ca_file=str(ca or files.ca), cert_file=str(cert or files.client_cert), key_file=str(key or files.client_key)
    )


@pytest.fixture
def series(tmp_path):
    return write_series(tmp_path / "source", SeriesSpec(count=3, modality="CT", patient_id="TLS1"))


def dcmtk_tls(files, cert=None, key=None) -> list[str]:
    return ["+tls", str(key or files.client_key), str(cert or files.client_cert), "+cf", str(files.ca)]


async def test_tls_association_with_our_client_records_the_peer_certificate(tmp_path, tls_files, series):
    async with secure_node(tmp_path, tls_files) as node:
        assert node.address.tls_port and node.address.tls_port != node.address.port
        with node.subscribe(AssociationOpened) as opened:
            async with connect(
                LOOPBACK, node.address.tls_port, called_ae_title=AE_TITLE,
                contexts=storage_contexts_for(series.paths), ssl_context=ours(tls_files),
            ) as association:
                for path in series.paths:
                    assert (await association.store(path)).ok
            event = await opened.receive()
        assert "CN=modality1" in event.tls_subject and "O=Triopacs Tests" in event.tls_subject
        assert (await counts(node)).instances == 3
        # The plain port still serves plain DICOM.
        async with connect(LOOPBACK, node.address.port, called_ae_title=AE_TITLE) as association:
            await association.echo()


async def test_dcmtk_and_pynetdicom_tls_clients(tmp_path, tls_files, series):
    async with secure_node(tmp_path, tls_files) as node:
        port = str(node.address.tls_port)
        echo = await run_dcmtk("echoscu", "-v", *dcmtk_tls(tls_files), "-aec", AE_TITLE, LOOPBACK, port)
        assert echo.returncode == 0, echo.describe()
        stored = await storescu(Address(AE_TITLE, node.address.tls_port), series.paths, extra_args=dcmtk_tls(tls_files))
        stored.check(expected=3)
        found = await run_dcmtk(
            "findscu", "-v", "-S", *dcmtk_tls(tls_files), "-aec", AE_TITLE, "-k", "QueryRetrieveLevel=STUDY",
            "-k", "PatientID=TLS1", "-k", "StudyInstanceUID", LOOPBACK, port,
        )
        assert found.returncode == 0 and "Find Response: 1" in found.output, found.describe()
        other = write_series(tmp_path / "more", SeriesSpec(count=2, modality="MR", patient_id="TLS2"))
        result = await secure_scu(
            node.address.tls_port, "--tls", str(tls_files.ca), str(tls_files.client_cert), str(tls_files.client_key),
            *map(str, other.paths),
        )
        assert result["associated"] and result["echo"] == 0 and result["stored"] == [0, 0]
        assert (await counts(node)).instances == 5


async def test_bad_certificates_and_wrong_transports_are_refused_and_the_node_serves_on(tmp_path, tls_files):
    async with secure_node(tmp_path, tls_files, audit=True) as node:
        tls_port = node.address.tls_port
        with node.subscribe(TlsRefused, capacity=64) as refused:
            # A certificate from a CA the node does not trust; an expired one; none at all.
            stranger = ours(tls_files, cert=tls_files.stranger_cert, key=tls_files.stranger_key)
            expired = ours(tls_files, cert=tls_files.expired_cert, key=tls_files.expired_key)
            anonymous = client_context(ca_file=str(tls_files.ca))
            for context in (stranger, expired, anonymous):
                # TLS 1.3: the client's handshake ends before the server has checked its
                # certificate, so the refusal may come as the connection closing.
                with pytest.raises(ClientError):
                    async with connect(LOOPBACK, tls_port, called_ae_title=AE_TITLE, ssl_context=context) as association:
                        await association.echo()
            # Plain DICOM to the TLS port.
            plain = await run_dcmtk("echoscu", "-aec", AE_TITLE, LOOPBACK, str(tls_port), timeout=30)
            assert plain.returncode != 0
            reasons = [(await refused.receive()).reason for _ in range(4)]
        assert "certificate" in reasons[0].lower(), reasons
        assert "expired" in reasons[1].lower(), reasons
        assert "certificate" in reasons[2].lower(), reasons
        assert "TLS error" in reasons[3], reasons
        # TLS to the plain port: no TLS server answers there.
        with pytest.raises(ConnectionFailed):
            async with connect(LOOPBACK, node.address.port, called_ae_title=AE_TITLE, ssl_context=ours(tls_files), connect_timeout=5):
                pass
        # A client that trusts another CA refuses our server certificate.
        with pytest.raises(ConnectionFailed, match="certificate"):
            async with connect(LOOPBACK, tls_port, called_ae_title=AE_TITLE, ssl_context=ours(tls_files, ca=tls_files.stranger_ca)):
                pass
        async with connect(LOOPBACK, tls_port, called_ae_title=AE_TITLE, ssl_context=ours(tls_files)) as association:
            await association.echo()
        trail = [e.fields for e in entries(node.config.data_dir / "audit" / "audit.jsonl")]
    # Each refusal is a Security Alert (node authentication) in the audit trail; the
    # association that got through carries the client certificate's subject.
    alerts = [r for r in trail if r["event"]["code"] == "110113"]
    assert len(alerts) >= 5 and all(r["event_types"][0]["code"] == "110126" for r in alerts)
    assert any("expired" in r["outcome_text"] for r in alerts)
    [login] = [r for r in trail if r["event"]["code"] == "110114"]
    assert "CN=modality1" in login["participants"][0]["user_name"]


async def test_stalled_handshakes_time_out_and_a_flood_cannot_hold_the_port(tmp_path, tls_files):
    async with secure_node(tmp_path, tls_files, tls={"handshake_timeout": 0.5}, max_waiting_connections=16) as node:
        tls_port = node.address.tls_port
        with node.subscribe(TlsRefused, capacity=1024) as refused:
            # One client that connects and says nothing: closed after the handshake timeout.
            silent = await trio.open_tcp_stream(LOOPBACK, tls_port)
            with trio.fail_after(5):
                assert await silent.receive_some(100) == b""
            assert "no TLS handshake within" in (await refused.receive()).reason
            # A flood of silent connections, random bytes among them: the oldest make room.
            flood = []
            for index in range(100):
                stream = await trio.open_tcp_stream(LOOPBACK, tls_port)
                if index % 10 == 0:
                    await stream.send_all(os.urandom(300))
                flood.append(stream)
            with trio.fail_after(10):
                async with connect(LOOPBACK, tls_port, called_ae_title=AE_TITLE, ssl_context=ours(tls_files)) as association:
                    await association.echo()
            for stream in flood:
                await stream.aclose()
        await silent.aclose()


async def test_our_scu_over_tls_to_dcmtk_storescp(tmp_path, tls_files, series):
    tls_server = ["+tls", str(tls_files.server_key), str(tls_files.server_cert), "+cf", str(tls_files.ca)]
    async with storescp("SECURESCP", extra_args=tls_server) as scp:
        # The CLI: echo with --tls and our client certificate.
        done = await run_cli([
            "echo", LOOPBACK, str(scp.port), "--aec", "SECURESCP", "--tls", "--tls-ca", str(tls_files.ca),
            "--tls-cert", str(tls_files.client_cert), "--tls-key", str(tls_files.client_key),
        ])
        assert done.returncode == 0, done.stderr.decode()
        # Without our certificate storescp refuses (it wants one), and the CLI says so.
        done = await run_cli(["echo", LOOPBACK, str(scp.port), "--aec", "SECURESCP", "--tls", "--tls-ca", str(tls_files.ca)])
        assert done.returncode == 1 and (b"cannot connect" in done.stderr or b"aborted" in done.stderr), done.stderr
        # C-MOVE sub-operations to a [[remote]] marked tls.
        destination = RemoteAE(ae_title="SECURESCP", host=LOOPBACK, port=scp.port, tls=True)
        async with secure_node(tmp_path, tls_files, remote=[destination]) as node:
            async with connect(LOOPBACK, node.address.port, called_ae_title=AE_TITLE, contexts=storage_contexts_for(series.paths)) as association:
                for path in series.paths:
                    assert (await association.store(path)).ok
            query = Dataset()
            query.QueryRetrieveLevel = "STUDY"
            query.StudyInstanceUID = series.study_instance_uid
            async with connect(LOOPBACK, node.address.port, called_ae_title=AE_TITLE) as association:
                progress = [p async for p in association.move(query, "SECURESCP", level="STUDY")]
            assert (progress[-1].completed, progress[-1].failed) == (3, 0)
        assert len(scp.stored_files()) == 3


async def test_serve_refuses_a_certificate_it_cannot_load_with_one_line(tmp_path, tls_files):
    config = tmp_path / "node.toml"
    config.write_text(
        f'[node]\nport = 0\ndata_dir = "{tmp_path / "data"}"\nworkers = 0\n[http]\nenabled = false\n'
        f'[tls]\nenabled = true\nport = 0\ncert_file = "{tmp_path / "missing.pem"}"\nkey_file = "{tls_files.server_key}"\n'
    )
    done = await run_cli(["serve", "--config", str(config)])
    assert done.returncode == 2, done.stderr.decode()
    assert b"missing.pem' does not exist" in done.stderr and done.stderr.count(b"\n") == 1
