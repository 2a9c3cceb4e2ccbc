"""The admin API against a real node: every route the OpenAPI document lists is called
here (a test checks the list), errors are problem+json, the document is valid OpenAPI 3.1."""

from __future__ import annotations

import re

import attrs
from dicom_samples import SeriesSpec, write_series
from openapi_spec_validator import validate
from peers import echoscu, storescu

from triopacs import connect
from triopacs.actors.node.listener import GetAddress
from triopacs.client.contexts import verification_contexts
from triopacs.supervisor import open_node as open_bare_node
from triopacs.web.node import web_spec
from triopacs.web.phase import NodePhase

from node.nodes import LOOPBACK, node_config, peer, running_node
from web.client import get, request

CALLED: set[tuple[str, str]] = set()  # (method, OpenAPI path) each test called


async def call(node, method: str, template: str, **values):
    CALLED.add((method, template))
    return await request(node, method, template.format(**values))


def problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["title"] and body["type"]
    return body


async def test_the_openapi_document_is_valid_and_every_route_is_exercised(tmp_path):
    async with running_node(tmp_path) as node:
        document = (await get(node, "/openapi.json")).json()
        validate(document)  # OpenAPI 3.1, against the specification's schema
        documented = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
        series = write_series(tmp_path / "in", SeriesSpec(count=3, modality="MR"))
        (await storescu(peer(node), [tmp_path / "in"])).check(expected=3)
        await _probes_and_system(node)
        await _associations(node)
        await _tasks(node)
        await _locks(node)
        await _studies(node, series.study_instance_uid)
        await _statistics(node)
        # With [access] off there are no tokens to have (tests/web/test_auth.py has them on).
        problem(await call(node, "POST", "/api/v1/auth/token"), 404)
    assert documented == CALLED, f"documented, never called: {documented - CALLED}; called, undocumented: {CALLED - documented}"
    assert len(documented) >= 19


async def _probes_and_system(node):
    for path in ("/live", "/ready"):
        response = await call(node, "GET", path)
        assert response.status_code == 200 and response.json() == {"status": "ok"}
    health = (await call(node, "GET", "/health")).json()
    assert health["status"] == "ok" and health["phase"] == "ready"
    names = {c["name"] for c in health["components"]}
    assert {"index", "listener", "locks", "scheduler", "tier:local"} <= names
    metrics = await call(node, "GET", "/metrics")
    assert metrics.headers["content-type"].startswith("text/plain") and "pacs_images_stored_total" in metrics.text
    version = (await call(node, "GET", "/api/v1/system/version")).json()
    assert version["name"] == "triopacs" and version["api"] == "1"
    status = (await call(node, "GET", "/api/v1/system/status")).json()
    assert status["endpoints"]["dicom"] == f"{LOOPBACK}:{node.address.port}"
    assert status["endpoints"]["events"] == f"ws://{node.events.host}:{node.events.port}/events"
    config = (await call(node, "GET", "/api/v1/system/config")).json()["sections"]
    assert config["node"]["ae_title"] == node.config.node.ae_title and config["http"]["port"] == 0


async def _associations(node):
    async with connect(LOOPBACK, node.address.port, called_ae_title=node.config.node.ae_title, calling_ae_title="ADMINTEST",
                       contexts=verification_contexts()):
        listed = (await call(node, "GET", "/api/v1/associations")).json()["associations"]
    [association] = listed
    assert association["calling_ae_title"] == "ADMINTEST" and association["called_ae_title"] == node.config.node.ae_title
    assert association["contexts"] == ["1.2.840.10008.1.1"] and association["state"] == "STA6"
    assert association["bytes_received"] > 0 and association["age"] >= 0


async def _tasks(node):
    tasks = (await call(node, "GET", "/api/v1/tasks")).json()["tasks"]
    assert "builtin-verification" in {t["id"] for t in tasks}
    with node.subscribe() as events:
        ran = await call(node, "POST", "/api/v1/tasks/{task_id}/run", task_id="builtin-verification")
        assert ran.status_code == 200 and ran.json()["id"] == "builtin-verification"
        async for event in events:  # the run's end, not a sleep
            if type(event).__name__ == "TaskExecuted" and event.record.task_id == "builtin-verification":
                break
    history = (await call(node, "GET", "/api/v1/tasks/{task_id}/history", task_id="builtin-verification")).json()["runs"]
    assert [r["trigger"] for r in history] == ["manual"] and history[0]["state"] == "completed"
    paused = (await call(node, "POST", "/api/v1/tasks/{task_id}/pause", task_id="builtin-verification")).json()
    assert paused["state"] == "paused"
    resumed = (await call(node, "POST", "/api/v1/tasks/{task_id}/resume", task_id="builtin-verification")).json()
    assert resumed["state"] == "pending"
    cancelled = (await call(node, "POST", "/api/v1/tasks/{task_id}/cancel", task_id="builtin-verification")).json()
    assert cancelled["state"] == "cancelled"
    problem(await request(node, "POST", "/api/v1/tasks/no-such-task/run"), 404)
    problem(await request(node, "GET", "/api/v1/tasks/builtin-verification/history?limit=0"), 400)


async def _locks(node):
    locks = (await call(node, "GET", "/api/v1/locks")).json()
    assert locks["locks"] == [] and locks["waiting"] == 0


async def _studies(node, study_uid: str):
    page = (await call(node, "GET", "/api/v1/studies")).json()
    assert [s["study_instance_uid"] for s in page["studies"]] == [study_uid] and page["next"] is None
    assert page["studies"][0]["instances"] == 3
    study = (await call(node, "GET", "/api/v1/studies/{uid}", uid=study_uid)).json()
    assert study["instances"] == 3 and study["series"] == 1 and study["modalities"] == ["MR"] and study["tiers"] == {"local": 3}
    problem(await request(node, "GET", "/api/v1/studies/1.2.3.999"), 404)
    problem(await request(node, "GET", "/api/v1/studies/not-a-uid"), 400)
    problem(await request(node, "GET", "/api/v1/studies?after=garbage"), 400)
    deleted = (await call(node, "DELETE", "/api/v1/studies/{uid}", uid=study_uid)).json()
    assert deleted == {"study_instance_uid": study_uid, "files_removed": 3, "files_failed": 0}
    problem(await request(node, "GET", f"/api/v1/studies/{study_uid}"), 404)
    problem(await request(node, "DELETE", f"/api/v1/studies/{study_uid}"), 404)
    assert not list((node.config.data_dir).rglob("*.dcm"))


async def _statistics(node):
    stats = (await call(node, "GET", "/api/v1/statistics")).json()
    assert stats["instances_stored"] == 3 and stats["instances"] == 0  # stored, then deleted
    assert [t["name"] for t in stats["tiers"]] == ["local"] and stats["tiers"][0]["healthy"]


async def test_unknown_paths_and_methods_are_problems(tmp_path):
    async with running_node(tmp_path) as node:
        problem(await get(node, "/api/v1/nothing-here"), 404)
        problem(await request(node, "PUT", "/api/v1/statistics"), 405)


async def test_ready_is_503_until_the_node_says_it_is_up(tmp_path):
    # The web subtree alone, as it runs while the services start: alive, not ready.
    config = node_config(tmp_path / "node")
    phase = NodePhase()
    async with open_bare_node(config, front=[web_spec(config, phase)]) as node:
        address = await node.system.lookup("/node/web/http").ask(GetAddress())
        node = attrs.evolve(node, http=address)
        assert (await get(node, "/live")).status_code == 200
        starting = await get(node, "/ready")
        assert starting.status_code == 503 and starting.json() == {"status": "starting"}
        phase.value = "ready"
        assert (await get(node, "/ready")).status_code == 200
        phase.value = "stopping"
        assert (await get(node, "/ready")).status_code == 503


async def test_the_status_page_is_served_whole(tmp_path):
    async with running_node(tmp_path) as node:
        page = await get(node, "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<canvas id="chart"' in page.text
    assert not re.search(r"(src|href)=\"https?://", page.text)  # nothing fetched from elsewhere


def test_secrets_are_redacted_in_the_config_view():
    from triopacs.config import Config
    from triopacs.storage.tier_settings import tier_definition
    from triopacs.web.redact import redacted

    s3 = tier_definition("tier[0]", {"name": "cold", "kind": "s3", "bucket": "b", "secret_access_key": "hunter2"})
    azure = tier_definition("tier[1]", {"name": "blob", "kind": "azure", "container": "c", "connection_string": "AccountKey=xyz"})
    shown = redacted(Config(tier=(s3, azure)))
    assert shown["tier"][0]["settings"]["secret_access_key"] == "***" and shown["tier"][0]["settings"]["bucket"] == "b"
    assert shown["tier"][1]["settings"]["connection_string"] == "***"
    assert "hunter2" not in repr(shown) and "xyz" not in repr(shown)


async def test_associations_served_by_a_worker_process_are_listed_and_counted(tmp_path):
    async with running_node(tmp_path, workers=1) as node:
        async with connect(LOOPBACK, node.address.port, called_ae_title=node.config.node.ae_title, calling_ae_title="INWORKER",
                           contexts=verification_contexts()):
            listed = (await get(node, "/api/v1/associations")).json()["associations"]
        (await echoscu(peer(node))).check()
        stats = (await get(node, "/api/v1/statistics")).json()
    assert [a["calling_ae_title"] for a in listed] == ["INWORKER"] and listed[0]["state"] == "STA6"
    assert stats["associations"] == 2
