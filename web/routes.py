"""The admin API's routes: one table (Endpoint) that the router, the OpenAPI document
and the route-coverage test all read."""

from __future__ import annotations

import json
from importlib import resources

import attrs
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route

from ..actors import ReplyError, converter
from ..actors.node.audit import AUDIT_PATH
from ..actors.node.security import SECURITY_PATH, IssueToken
from ..storage import audit_records
from .auth import Guard, Unauthorized, basic_credentials
from .admin import Admin
from .endpoint import Endpoint, Parameter
from .metrics_actor import RenderMetrics
from .openapi import document
from .problems import ApiProblem, error_response
from .views import (
    AssociationList, ConfigView, Health, LockList, Probe, Statistics, StudyDetail, StudyList, StudyRemoved,
    SystemStatus, TaskHistory, TaskList, TaskView, TokenView, Version,
)

PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"
MAX_PAGE = 1000
TASK_ACTIONS = ("run", "pause", "resume", "cancel")


def _json(value, status: int = 200) -> Response:
    return Response(json.dumps(converter.unstructure(value), separators=(",", ":")), status_code=status, media_type="application/json")


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiProblem(400, "bad-request", f"{name} must be an integer", f"got {raw[:40]!r}") from None
    if not low <= value <= high:
        raise ApiProblem(400, "bad-request", f"{name} must be between {low} and {high}", f"got {value}")
    return value


def endpoints(admin: Admin, metrics_path: str, guard: Guard) -> list[Endpoint]:
    async def health(request: Request) -> Response:
        answer = await admin.health()
        return _json(answer, 200 if answer.status == "ok" else 503)

    async def ready(request: Request) -> Response:
        ok, probe = await admin.ready()
        return _json(probe, 200 if ok else 503)

    async def live(request: Request) -> Response:
        return _json(Probe(status="ok"))

    async def metrics(request: Request) -> Response:
        answer = await admin.ask(metrics_path, RenderMetrics())
        return Response(answer.text, media_type=PROMETHEUS)

    async def version(request: Request) -> Response:
        return _json(admin.version())

    async def status(request: Request) -> Response:
        return _json(await admin.status())

    async def config(request: Request) -> Response:
        return _json(admin.config_view())

    async def associations(request: Request) -> Response:
        return _json(await admin.associations())

    async def tasks(request: Request) -> Response:
        return _json(await admin.tasks())

    def task_action(action: str):
        async def act(request: Request) -> Response:
            return _json(await admin.task_action(request.path_params["task_id"], action))
        return act

    async def task_history(request: Request) -> Response:
        return _json(await admin.task_history(request.path_params["task_id"], _int(request, "limit", 100, 1, MAX_PAGE)))

    async def locks(request: Request) -> Response:
        return _json(await admin.locks())

    async def studies(request: Request) -> Response:
        return _json(await admin.studies(request.query_params.get("after"), _int(request, "limit", 100, 1, MAX_PAGE)))

    async def study(request: Request) -> Response:
        return _json(await admin.study(request.path_params["uid"]))

    async def delete_study(request: Request) -> Response:
        return _json(await admin.delete_study(request.path_params["uid"]))

    async def statistics(request: Request) -> Response:
        return _json(await admin.statistics())

    async def token(request: Request) -> Response:
        if not guard.enabled:
            raise ApiProblem(404, "not-found", "access control is off", "[access] enabled is false: no tokens are needed")
        username, password = basic_credentials(request.headers.get("authorization", "").partition(" ")[2])
        try:
            issued = await admin.ask(SECURITY_PATH, IssueToken(username=username, password=password))
        except ReplyError:
            await guard.record(request, None, lambda ae, peer: audit_records.web_login(ae, peer, ok=False, reason=f"token refused for {username!r}"))
            raise Unauthorized("wrong credentials") from None
        await guard.record(request, None, lambda ae, peer: audit_records.web_login(ae, attrs.evolve(peer, username=username), ok=True))
        return _json(TokenView(token=issued.token, username=issued.username, expires_in=issued.expires_in))

    uid = Parameter(name="uid", where="path", description="a Study Instance UID")
    task_id = Parameter(name="task_id", where="path", description="a task's id (GET /api/v1/tasks lists them)")
    limit = Parameter(name="limit", where="query", description=f"at most this many (1 to {MAX_PAGE}, default 100)", kind=int)
    unavailable = ((503, "an actor the answer needs is not available"),)
    task_errors = ((404, "no such task"), (409, "the task is not in a state that allows it"), *unavailable)
    table = [
        Endpoint(method="GET", path="/health", name="health", summary="Each component's health", tag="probes", handler=health, permission=None,
                 response=Health, answers="every component ok (503 with the same body when one is not)"),
        Endpoint(method="GET", path="/ready", name="ready", summary="Ready: every actor up and the index open", tag="probes",
                 handler=ready, response=Probe, errors=(), permission=None),
        Endpoint(method="GET", path="/live", name="live", summary="The node's event loop answers", tag="probes", handler=live, response=Probe, permission=None),
        Endpoint(method="GET", path="/metrics", name="metrics", summary="Prometheus metrics", tag="probes", handler=metrics,
                 media_type=PROMETHEUS, answers="the Prometheus text format", errors=unavailable, permission=None),
        Endpoint(method="GET", path="/api/v1/system/version", name="version", summary="Version", tag="system", handler=version, response=Version),
        Endpoint(method="GET", path="/api/v1/system/status", name="status", summary="Node status and endpoints", tag="system",
                 handler=status, response=SystemStatus, errors=unavailable),
        Endpoint(method="GET", path="/api/v1/system/config", name="config", summary="Running configuration, secrets redacted",
                 tag="system", handler=config, response=ConfigView),
        Endpoint(method="GET", path="/api/v1/associations", name="associations", summary="Open DICOM associations", tag="associations",
                 handler=associations, response=AssociationList),
        Endpoint(method="GET", path="/api/v1/tasks", name="tasks", summary="Scheduled tasks", tag="tasks", handler=tasks,
                 response=TaskList, errors=unavailable),
        *[
            Endpoint(method="POST", path=f"/api/v1/tasks/{{task_id}}/{action}", name=f"task_{action}",
                     summary=f"{action.capitalize()} a task" if action != "run" else "Run a task now", tag="tasks",
                     handler=task_action(action), response=TaskView, parameters=(task_id,), errors=task_errors,
                     answers="the task afterwards")
            for action in TASK_ACTIONS
        ],
        Endpoint(method="GET", path="/api/v1/tasks/{task_id}/history", name="task_history", summary="A task's runs", tag="tasks",
                 handler=task_history, response=TaskHistory, parameters=(task_id, limit), errors=((400, "bad limit"), *task_errors)),
        Endpoint(method="GET", path="/api/v1/locks", name="locks", summary="Study locks held", tag="locks", handler=locks,
                 response=LockList, errors=unavailable),
        Endpoint(method="GET", path="/api/v1/studies", name="studies", summary="Studies in the index", tag="studies", handler=studies,
                 response=StudyList, errors=((400, "bad cursor or limit"), *unavailable), permission="query",
                 parameters=(Parameter(name="after", where="query", description="the `next` cursor of the previous page"), limit)),
        Endpoint(method="GET", path="/api/v1/studies/{uid}", name="study", summary="One study", tag="studies", handler=study,
                 response=StudyDetail, parameters=(uid,), errors=((400, "not a valid UID"), (404, "no such study"), *unavailable),
                 permission="query"),
        Endpoint(method="DELETE", path="/api/v1/studies/{uid}", name="delete_study", summary="Delete a study (under its exclusive lock)",
                 tag="studies", handler=delete_study, response=StudyRemoved, parameters=(uid,),
                 errors=((400, "not a valid UID"), (404, "no such study"), (409, "locked or not deleted"), *unavailable),
                 permission="delete"),
        Endpoint(method="POST", path="/api/v1/auth/token", name="token", summary="A bearer token for HTTP basic credentials",
                 tag="auth", handler=token, response=TokenView, permission="", answers="the token and its lifetime",
                 errors=((401, "no or wrong credentials"), (404, "access control is off"), *unavailable)),
        Endpoint(method="GET", path="/api/v1/statistics", name="statistics", summary="What the node holds and has done", tag="system",
                 handler=statistics, response=Statistics, errors=unavailable),
    ]
    return table


def status_page() -> str:
    return resources.files(__package__).joinpath("status_page.html").read_text(encoding="utf-8")


def guarded(endpoint: Endpoint, guard: Guard):
    """The endpoint's handler behind the guard (which raises 401/403 before it runs)."""
    if endpoint.permission == "":  # checks its own credentials (the token endpoint)
        return endpoint.handler

    # Routes that read or change studies are audited, their refusals too.
    data = endpoint.permission in ("query", "delete")

    async def handler(request: Request) -> Response:
        return await guard.guarded(request, endpoint, endpoint.handler, data)

    return handler


def guard_of(admin: Admin) -> Guard:
    """The one guard of the HTTP server: the admin API and DICOMweb check users alike."""
    access = admin.config.access
    return Guard(
        admin, enabled=access.enabled, open_probes=access.open_probes, audit_path=AUDIT_PATH if admin.config.audit.enabled else None
    )


def build_app(admin: Admin, metrics_path: str, *, dicomweb: tuple[str, Starlette] | None = None) -> Starlette:
    """The admin API; with `dicomweb` (prefix, application), DICOMweb mounted under the prefix."""
    guard = guard_of(admin)
    table = endpoints(admin, metrics_path, guard)
    openapi = json.dumps(document(table))
    page = status_page()

    async def openapi_json(request: Request) -> Response:
        return Response(openapi, media_type="application/json")

    async def index(request: Request) -> Response:
        return HTMLResponse(page)

    async def problem(request: Request, error: Exception) -> Response:
        return error_response(error)

    routes = [Route(e.path, guarded(e, guard), methods=[e.method]) for e in table]
    routes += [Route("/openapi.json", openapi_json, methods=["GET"]), Route("/", index, methods=["GET"])]
    if dicomweb is not None:
        prefix, application = dicomweb
        routes.append(Mount(prefix, app=application))
    return Starlette(routes=routes, exception_handlers={ApiProblem: problem, HTTPException: problem, Exception: problem})
