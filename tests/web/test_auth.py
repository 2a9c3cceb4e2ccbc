"""The admin API with [access] on: HTTP basic and bearer tokens checked against the
same users and roles as the DICOM side, a permission per route, the probes open only
while open_probes; hostile credentials are refused with 401 and the API keeps serving."""

from __future__ import annotations

import base64

import attrs

from triopacs import open_node  # with the web layer
from triopacs.config import AccessSettings
from triopacs.storage.security_db import add_user, open_security_db

from node.nodes import node_config
from web.client import request

PASSWORD = "correct horse battery"


def basic(username: str, password: str = PASSWORD) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


def guarded_node(tmp_path, **access):
    data = tmp_path / "node"
    data.mkdir(parents=True, exist_ok=True)
    db = open_security_db(str(data / "security.sqlite"))
    for username, role in (("admin", "administrator"), ("reader", "viewer")):
        add_user(db, username, role, PASSWORD)
    db.close()
    config = node_config(data)
    return open_node(attrs.evolve(config, access=AccessSettings(enabled=True, **access)))


async def test_routes_need_a_user_whose_role_allows_them(tmp_path):
    async with guarded_node(tmp_path) as node:
        nobody = await request(node, "GET", "/api/v1/studies")
        assert nobody.status_code == 401 and nobody.headers["www-authenticate"].startswith("Basic")
        assert (await request(node, "GET", "/api/v1/studies", headers=basic("reader", "wrong password"))).status_code == 401
        assert (await request(node, "GET", "/api/v1/studies", headers=basic("ghost"))).status_code == 401
        assert (await request(node, "GET", "/api/v1/studies", headers=basic("reader"))).status_code == 200
        # A viewer may read studies, not delete them nor see the configuration.
        assert (await request(node, "DELETE", "/api/v1/studies/1.2.3", headers=basic("reader"))).status_code == 403
        assert (await request(node, "GET", "/api/v1/system/config", headers=basic("reader"))).status_code == 403
        assert (await request(node, "GET", "/api/v1/system/config", headers=basic("admin"))).status_code == 200
        # Probes stay open for monitoring.
        for path in ("/live", "/metrics"):
            assert (await request(node, "GET", path)).status_code == 200
        # A token for a script: one password check, then the bearer token.
        token = (await request(node, "POST", "/api/v1/auth/token", headers=basic("admin"))).json()
        assert token["username"] == "admin" and token["expires_in"] > 0
        bearer = {"Authorization": f"Bearer {token['token']}"}
        assert (await request(node, "GET", "/api/v1/tasks", headers=bearer)).status_code == 200
        assert (await request(node, "GET", "/api/v1/tasks", headers={"Authorization": "Bearer forged"})).status_code == 401
        assert (await request(node, "POST", "/api/v1/auth/token", headers=basic("admin", "nope"))).status_code == 401
        # Hostile credentials: garbage, a huge header, an unknown scheme - each 401, and on it goes.
        for header in ("Basic !!!notbase64", "Basic " + base64.b64encode(b"no-colon").decode(), "Basic " + "A" * 5000,
                       "Digest username=x", "Basic " + base64.b64encode(b"\xff\xfe:x").decode()):
            assert (await request(node, "GET", "/api/v1/studies", headers={"Authorization": header})).status_code == 401, header
        assert (await request(node, "GET", "/api/v1/studies", headers=basic("reader"))).status_code == 200


async def test_closed_probes_need_credentials_too(tmp_path):
    async with guarded_node(tmp_path, open_probes=False) as node:
        assert (await request(node, "GET", "/live")).status_code == 401
        assert (await request(node, "GET", "/metrics", headers=basic("reader"))).status_code == 403
        assert (await request(node, "GET", "/metrics", headers=basic("admin"))).status_code == 200


async def test_the_event_stream_needs_a_user_allowed_system(tmp_path):
    from trio_websocket import ConnectionRejected, open_websocket_url

    from web.client import events_url

    async with guarded_node(tmp_path) as node:
        for headers, status in (([], 401), ([(b"authorization", basic("reader")["Authorization"].encode())], 403)):
            try:
                async with open_websocket_url(events_url(node), extra_headers=headers):
                    raise AssertionError("the stream let an unauthorized client in")
            except ConnectionRejected as rejected:
                assert rejected.status_code == status
        admin = [(b"authorization", basic("admin")["Authorization"].encode())]
        async with open_websocket_url(events_url(node, "?types=activity"), extra_headers=admin) as ws:
            await ws.aclose()


async def test_dicomweb_checks_the_same_users_and_permissions(tmp_path):
    prefix = "/dicom-web"
    async with guarded_node(tmp_path) as node:
        assert node.config.dicomweb.prefix == prefix
        nobody = await request(node, "GET", f"{prefix}/studies")
        assert nobody.status_code == 401 and nobody.headers["www-authenticate"].startswith("Basic")
        assert nobody.headers["content-type"].startswith("application/problem+json")
        assert (await request(node, "GET", f"{prefix}/studies", headers=basic("reader"))).status_code == 204  # nothing stored
        assert (await request(node, "GET", f"{prefix}/capabilities")).status_code == 200  # open: what is served
        # A viewer may search and retrieve, not store; an administrator gets past the guard
        # to the body's own check (no multipart: 4xx of the STOW-RS code, not 401/403).
        body = {"Content-Type": 'multipart/related; type="application/dicom"; boundary=x'}
        assert (await request(node, "POST", f"{prefix}/studies", headers={**basic("reader"), **body}, content=b"")).status_code == 403
        stored = await request(node, "POST", f"{prefix}/studies", headers={**basic("admin"), **body}, content=b"")
        assert stored.status_code not in (401, 403) and 400 <= stored.status_code < 500
