"""Errors as RFC 9457 problem details (application/problem+json)."""

import json

from starlette.responses import Response

from .views import Problem

MEDIA_TYPE = "application/problem+json"
TYPES = "https://triopacs.invalid/problems/"  # problem kinds are named, not resolvable


class ApiProblem(Exception):
    """Raised by a handler; answered as problem+json with its status."""

    headers: dict[str, str] = {}  # sent with the answer (a 401's challenge)

    def __init__(self, status: int, kind: str, title: str, detail: str = "") -> None:
        super().__init__(title)
        self.problem = Problem(type=TYPES + kind, title=title, status=status, detail=detail)


def problem_response(problem: Problem) -> Response:
    body = {"type": problem.type, "title": problem.title, "status": problem.status}
    if problem.detail:
        body["detail"] = problem.detail
    return Response(json.dumps(body), status_code=problem.status, media_type=MEDIA_TYPE)


def error_response(error: Exception) -> Response:
    """The problem+json answer to what a route raised: its own problem, or the framework's
    404, 405 or 500."""
    if isinstance(error, ApiProblem):
        response = problem_response(error.problem)
        response.headers.update(error.headers)
        return response
    status = getattr(error, "status_code", 500)
    title = {404: "no such resource", 405: "method not allowed"}.get(status, "internal error")
    return problem_response(Problem(type=TYPES + ("not-found" if status == 404 else "http"), title=title, status=status))


def not_found(what: str, detail: str = "") -> ApiProblem:
    return ApiProblem(404, "not-found", f"{what} not found", detail)


def bad_request(title: str, detail: str = "") -> ApiProblem:
    return ApiProblem(400, "bad-request", title, detail)


def unavailable(title: str, detail: str = "") -> ApiProblem:
    return ApiProblem(503, "unavailable", title, detail)


def conflict(title: str, detail: str = "") -> ApiProblem:
    return ApiProblem(409, "conflict", title, detail)
