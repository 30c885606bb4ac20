"""HTTP errors as `{"error": {"code", "message"}}` with the right status (and `Allow`, `Retry-After`,
`WWW-Authenticate` headers where the status calls for them)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pixsim_runtime.requests import PARAM_INVALID, RequestRejected
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer of the API."""

    error: ErrorDetail


STATUS_TEXT = {
    400: "Bad request",
    401: "No valid credential",
    403: "Only an admin may do this",
    404: "Not found (or not yours)",
    405: "Method not allowed",
    409: "Conflict with the current state",
    413: "Request body too large",
    415: "Unsupported media type",
    416: "Range not satisfiable",
    422: "Invalid request",
    429: "Over a limit (see Retry-After)",
    502: "The provider failed",
}


def responses(*statuses: int) -> dict[int | str, dict]:
    """OpenAPI declarations of error statuses a route can answer."""
    return {s: {"model": ErrorBody, "description": STATUS_TEXT[s]} for s in statuses}


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestRejected)
    async def _rejected(_: Request, exc: RequestRejected) -> JSONResponse:
        # An unknown provider or operation named in a body is a bad request; params against the spec, 422.
        return JSONResponse(error_body(exc.code, exc.message), 422 if exc.code == PARAM_INVALID else 400)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            detail = next(e for e in errors if e.get("type") == "json_invalid")
            reason = (detail.get("ctx") or {}).get("error", "invalid JSON")
            return JSONResponse(
                error_body("malformed_json", f"request body is not valid JSON: {reason}"), 400
            )
        parts = [
            f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}" for e in errors[:20]
        ]
        return JSONResponse(error_body("invalid_request", "; ".join(parts)[:2000]), 422)

    @app.exception_handler(ValidationError)
    async def _event_invalid(_: Request, exc: ValidationError) -> JSONResponse:
        # A request that passed the API's own checks but would make an event outside the contract's
        # bounds (pixsim_contracts.limits): e.g. params over 64 KiB, an id with characters subjects refuse.
        parts = [f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:20]]
        return JSONResponse(error_body("invalid_request", "; ".join(parts)), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(
            exc.status_code, "http_error"
        )
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # Starlette names only the first route's methods; a path may have several
            headers["Allow"] = ", ".join(allowed_methods(request))
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code, headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this request's path (asked of the router itself, so routes
    included from sub-routers count too)."""
    routes = request.app.router.routes
    return [
        method
        for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
    ]
