"""The DICOMweb routes (QIDO-RS, WADO-RS, STOW-RS, capabilities) as one table, and the
Starlette application the HTTP actor mounts under [dicomweb] prefix.

Every route names the permission it needs (`Route.permission`): the HTTP server's
guard (web/auth.py) checks it against the same users and roles as the DICOM side -
searching needs `query`, retrieving `retrieve`, storing `store` - and audits each
request, as it does the admin API's data routes. With [access] off everything is open.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import attrs
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route as StarletteRoute

from ...actors import ActorContext
from ...config import Config
from ...storage.levels import Level
from ...storage.query import RetrieveItem, UNIQUE_KEYS
from ...storage.transcoding import can_transcode
from ...supervisor import store_settings
from ..auth import Guard
from ..problems import MEDIA_TYPE as PROBLEM, ApiProblem, bad_request, error_response
from . import capabilities, wado
from .archive import Archive, check_uid
from .instance_file import NotInFile
from .media import AS_STORED, DICOM, DICOM_JSON, MULTIPART, OCTET_STREAM, accepts_json, parse_accept, parse_media_type, wanted_instances
from .multipart import new_boundary, related_type, part_head, closing
from .qido import build_search
from .read_ahead import ReadAheadResponse
from .stow import response_json, response_status, store_parts

# The permissions of storage/access.py that the DIMSE services need too.
SEARCH = "query"
RETRIEVE = "retrieve"
STORE = "store"
PERMISSIONS = (SEARCH, RETRIEVE, STORE)
DEFAULT_PORTS = {"http": 80, "https": 443}


@attrs.frozen(kw_only=True)
class Route:
    method: str
    path: str
    name: str
    permission: str | None  # None: open to anyone (the capabilities)
    handler: Callable[[Request], Awaitable[Response]]


def _json(value, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(value, separators=(",", ":"), allow_nan=False), status_code=status, media_type=DICOM_JSON,
                    headers=headers)


def _not_acceptable(what: str, accept: str | None) -> ApiProblem:
    return ApiProblem(406, "not-acceptable", f"cannot answer {what} in an acceptable media type",
                      f"Accept: {(accept or '')[:200]!r}; GET capabilities lists what each resource answers in")


class DicomWeb:
    def __init__(self, ctx: ActorContext, config: Config) -> None:
        self.ctx = ctx
        self.config = config
        self.settings = config.dicomweb
        self.archive = Archive(ctx, track_access_time=config.hsm.track_access_time)
        self.store_settings = store_settings(config)

    # -- URLs -----------------------------------------------------------------------------

    def base(self, request: Request) -> str:
        """The base URL RetrieveURLs and BulkDataURIs start with: [dicomweb] public_url, else
        the Host the request came to. A Host without a port (dicomweb-client sends its host
        name alone) gets the port the server listens on when that is not the scheme's
        default: behind a proxy, set public_url."""
        if self.settings.public_url:
            return self.settings.public_url
        scheme = request.url.scheme
        server = request.scope.get("server") or ("127.0.0.1", 80)
        host = request.headers.get("host") or str(server[0])
        if ":" not in host.rsplit("]", 1)[-1] and server[1] not in (None, DEFAULT_PORTS.get(scheme)):
            host = f"{host}:{server[1]}"
        return f"{scheme}://{host}{self.settings.prefix}"

    # -- QIDO-RS --------------------------------------------------------------------------

    def search(self, level: Level):
        async def handler(request: Request) -> Response:
            if not accepts_json(request.headers.get("accept")):
                raise _not_acceptable("a search", request.headers.get("accept"))
            scope = {UNIQUE_KEYS[lvl]: check_uid(uid, name) for lvl, uid, name in (
                (Level.STUDY, request.path_params.get("study"), "Study Instance UID"),
                (Level.SERIES, request.path_params.get("series"), "Series Instance UID"),
            ) if uid is not None}
            search = build_search(level, list(request.query_params.multi_items()), scope, self.settings.max_results)
            found, more = await self.archive.search(search)
            headers = {}
            warnings = list(search.warnings)
            if more:
                warnings.append('299 triopacs: "There are more matches than were returned: use offset to page on."')
            if warnings:
                headers["Warning"] = ", ".join(warnings)
            if not found:
                return Response(status_code=204, headers=headers)
            base = self.base(request)
            for match in found:
                match["00081190"] = {"vr": "UR", "Value": [self._retrieve_url(base, level, match)]}
            return _json([dict(sorted(match.items())) for match in found], headers=headers)  # in tag order, as PS3.18 F.2 shows
        return handler

    @staticmethod
    def _retrieve_url(base: str, level: Level, match: dict) -> str:
        def uid(tag: int) -> str:
            return (match.get(f"{tag:08X}", {}).get("Value") or [""])[0]
        url = f"{base}/studies/{uid(UNIQUE_KEYS[Level.STUDY])}"
        if level >= Level.SERIES:
            url += f"/series/{uid(UNIQUE_KEYS[Level.SERIES])}"
        if level >= Level.IMAGE:
            url += f"/instances/{uid(UNIQUE_KEYS[Level.IMAGE])}"
        return url

    # -- WADO-RS --------------------------------------------------------------------------

    async def _items(self, request: Request) -> list[RetrieveItem]:
        p = request.path_params
        return await self.archive.instances(p["study"], p.get("series"), p.get("instance"))

    async def retrieve(self, request: Request) -> Response:
        accept = request.headers.get("accept")
        wanted = wanted_instances(accept)
        if wanted is None:
            raise _not_acceptable("instances", accept)
        items = await self._items(request)
        if wanted.transfer_syntax != AS_STORED:
            for stored in sorted({i.transfer_syntax_uid for i in items} - {wanted.transfer_syntax}):
                if not can_transcode(stored, wanted.transfer_syntax):
                    raise ApiProblem(406, "not-acceptable", f"cannot answer in transfer syntax {wanted.transfer_syntax[:64]}",
                                     f"instances are stored as {stored}; ask for it, transfer-syntax=*, or explicit VR little endian")
        boundary = new_boundary()
        body = wado.instances_body(self.archive, items, wanted.transfer_syntax, boundary, self.ctx.log)
        as_stored = all(wanted.transfer_syntax in (AS_STORED, i.transfer_syntax_uid) for i in items)
        headers = {"Content-Length": str(wado.stored_length(items, boundary))} if as_stored else None
        return ReadAheadResponse(body, media_type=related_type(DICOM, boundary), headers=headers)

    async def metadata(self, request: Request) -> Response:
        accept = request.headers.get("accept")
        if not accepts_json(accept):
            raise _not_acceptable("metadata", accept)
        items = await self._items(request)
        base = self.base(request)

        def url_of(item: RetrieveItem) -> str:
            return self._instance_url(base, request, item)

        body = wado.metadata_body(self.archive, items, url_of, self.settings.bulk_data_threshold, self.ctx.log)
        return StreamingResponse(body, media_type=DICOM_JSON)

    @staticmethod
    def _instance_url(base: str, request: Request, item: RetrieveItem) -> str:
        return f"{base}/studies/{item.study_instance_uid}/series/{item.series_instance_uid}/instances/{item.sop_instance_uid}"

    async def frames(self, request: Request) -> Response:
        numbers = _frame_numbers(request.path_params["frames"])
        [item] = await self._items(request)
        async with self.archive.local_file(item) as path:
            try:
                syntax, frames = await wado.read_frames(path, numbers)
            except NotInFile as missing:
                raise ApiProblem(404, "not-found", "no such frame", str(missing)) from None
        if not wado.frames_acceptable(request.headers.get("accept"), syntax):
            raise _not_acceptable(f"frames stored as {syntax}", request.headers.get("accept"))
        boundary = new_boundary()
        return Response(wado.frames_body(frames, syntax, boundary), media_type=related_type(wado.frame_media_type(syntax), boundary))

    async def bulkdata(self, request: Request) -> Response:
        accept = request.headers.get("accept")
        if not any(m.type in (MULTIPART, "multipart/*", "*/*", OCTET_STREAM) for m in parse_accept(accept)):
            raise _not_acceptable("bulk data", accept)
        [item] = await self._items(request)
        async with self.archive.local_file(item) as path:
            try:
                value = await wado.read_bulk(path, request.path_params["path"])
            except NotInFile as missing:
                raise ApiProblem(404, "not-found", "no such bulk data", str(missing)) from None
        boundary = new_boundary()
        body = part_head(boundary, OCTET_STREAM) + value + b"\r\n" + closing(boundary)
        return Response(body, media_type=related_type(OCTET_STREAM, boundary))

    # -- STOW-RS --------------------------------------------------------------------------

    async def store(self, request: Request) -> Response:
        study = request.path_params.get("study")
        if study is not None:
            check_uid(study, "Study Instance UID")
        content_type = parse_media_type(request.headers.get("content-type", ""))
        if content_type.type != MULTIPART or (content_type.get("type") or DICOM).lower() != DICOM:
            raise ApiProblem(415, "unsupported-media-type", "STOW-RS takes multipart/related; type=\"application/dicom\"",
                             f"got {request.headers.get('content-type', '')[:120]!r}")
        boundary = content_type.get("boundary")
        if not boundary:
            raise bad_request("the multipart body has no boundary parameter")
        try:
            outcomes = await store_parts(
                request.stream(), boundary, settings=self.store_settings, ctx=self.ctx, study=study,
                max_part_bytes=self.settings.max_part_bytes,
            )
        except ClientDisconnect:
            self.ctx.log.warning("STOW-RS body ended early: the client went away")
            raise ApiProblem(400, "bad-multipart", "the body ended early (the client went away)") from None
        except ApiProblem as refused:
            self.ctx.log.warning("STOW-RS refused", status=refused.problem.status, title=refused.problem.title,
                                 detail=refused.problem.detail, content_type=request.headers.get("content-type", "")[:200])
            raise
        base = self.base(request)
        studies = {o.study_instance_uid for o in outcomes if o.failure is None and o.study_instance_uid}
        study_url = f"{base}/studies/{study or next(iter(studies))}" if (study or len(studies) == 1) else None

        def instance_url(o) -> str:
            return f"{base}/studies/{o.study_instance_uid}/series/{o.series_instance_uid}/instances/{o.sop_instance_uid}"

        for o in outcomes:
            if o.failure is not None:
                self.ctx.log.info("STOW-RS part not stored", sop_instance_uid=o.sop_instance_uid, reason=hex(o.failure), comment=o.comment)
        answer, status = response_json(outcomes, study_url, instance_url), response_status(outcomes)
        if status == 409 and not _asks_dicom_json(request.headers.get("accept")):
            # Nothing stored: the node's one error format, the PS3.18 response inside it.
            reasons = "; ".join(sorted({o.comment for o in outcomes if o.comment}))[:500]
            problem = ApiProblem(409, "not-stored", "no instance was stored", reasons).problem
            body = {"type": problem.type, "title": problem.title, "status": 409, "detail": problem.detail, "store_response": answer}
            return Response(json.dumps(body), status_code=409, media_type=PROBLEM)
        return _json(answer, status=status)

    # -- capabilities ---------------------------------------------------------------------

    async def capabilities(self, request: Request) -> Response:
        return Response(json.dumps(capabilities.describe(self.base(request), self.routes())), media_type="application/json")

    # -- the table ------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        study, series, instance = "/studies/{study}", "/studies/{study}/series/{series}", "/studies/{study}/series/{series}/instances/{instance}"
        table = [
            Route(method="GET", path="/studies", name="search-studies", permission=SEARCH, handler=self.search(Level.STUDY)),
            Route(method="GET", path="/series", name="search-series", permission=SEARCH, handler=self.search(Level.SERIES)),
            Route(method="GET", path="/instances", name="search-instances", permission=SEARCH, handler=self.search(Level.IMAGE)),
            Route(method="GET", path=f"{study}/series", name="search-study-series", permission=SEARCH, handler=self.search(Level.SERIES)),
            Route(method="GET", path=f"{study}/instances", name="search-study-instances", permission=SEARCH, handler=self.search(Level.IMAGE)),
            Route(method="GET", path=f"{series}/instances", name="search-series-instances", permission=SEARCH, handler=self.search(Level.IMAGE)),
        ]
        for name, path in (("study", study), ("series", series), ("instance", instance)):
            table.append(Route(method="GET", path=path, name=f"retrieve-{name}", permission=RETRIEVE, handler=self.retrieve))
            table.append(Route(method="GET", path=f"{path}/metadata", name=f"retrieve-{name}-metadata", permission=RETRIEVE,
                               handler=self.metadata))
        table += [
            Route(method="GET", path=f"{instance}/frames/{{frames}}", name="retrieve-frames", permission=RETRIEVE, handler=self.frames),
            Route(method="GET", path=f"{instance}/bulkdata/{{path:path}}", name="retrieve-bulkdata", permission=RETRIEVE,
                  handler=self.bulkdata),
            Route(method="POST", path="/studies", name="store", permission=STORE, handler=self.store),
            Route(method="POST", path=study, name="store-study", permission=STORE, handler=self.store),
            Route(method="GET", path="/capabilities", name="capabilities", permission=None, handler=self.capabilities),
            Route(method="OPTIONS", path="/", name="capabilities-options", permission=None, handler=self.capabilities),
        ]
        return table


def _asks_dicom_json(accept: str | None) -> bool:
    return any(m.type == DICOM_JSON for m in parse_accept(accept))


def _frame_numbers(text: str) -> list[int]:
    try:
        numbers = [int(part) for part in text.split(",")]
    except ValueError:
        raise bad_request("frame numbers must be a comma-separated list of integers", f"got {text[:80]!r}") from None
    if not numbers or any(n < 1 for n in numbers) or len(numbers) > 10000:
        raise bad_request("frame numbers start at 1", f"got {text[:80]!r}")
    return numbers


def _guarded(route: Route, guard: Guard) -> Callable[[Request], Awaitable[Response]]:
    if route.permission is None:  # the capabilities: open to anyone
        return route.handler

    async def handle(request: Request) -> Response:
        return await guard.guarded(request, route, route.handler, data=True)
    return handle


def build_dicomweb(ctx: ActorContext, config: Config, guard: Guard) -> Starlette:
    service = DicomWeb(ctx, config)

    async def problem(request: Request, error: Exception) -> Response:
        if not isinstance(error, ApiProblem) and getattr(error, "status_code", 500) == 500:
            ctx.log.exception("DICOMweb request failed", path=request.url.path)
        return error_response(error)

    middleware = []
    if config.dicomweb.cors_origins:
        middleware.append(Middleware(
            CORSMiddleware, allow_origins=list(config.dicomweb.cors_origins), allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Accept", "Content-Type", "Authorization"], expose_headers=["Warning", "Content-Location"],
        ))
    routes = [StarletteRoute(r.path, _guarded(r, guard), methods=[r.method]) for r in service.routes()]
    return Starlette(routes=routes, middleware=middleware,
                     exception_handlers={ApiProblem: problem, HTTPException: problem, Exception: problem})


__all__ = ["PERMISSIONS", "Route", "build_dicomweb"]
