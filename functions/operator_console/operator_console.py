"""GET /console: the operator console, a page that calls the operator API with the operator's JWT.
No build step: one HTML page, its scripts (plain ones, loaded in order: api.js first, app.js last)
and one stylesheet, served as they are, under a Content-Security-Policy that allows no inline
script or style and no other origin."""

from pathlib import Path
from typing import Annotated, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path as PathParam

from jobs_core.native.http import ERROR_RESPONSES, handler_for, resolver

STATIC = Path(__file__).parent / "static"
FILES = {
    "index.html": "text/html; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "jobs.js": "text/javascript; charset=utf-8",
    "devices.js": "text/javascript; charset=utf-8",
    "groups.js": "text/javascript; charset=utf-8",
    "templates.js": "text/javascript; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
CONTENT = {name: (STATIC / name).read_text() for name in FILES}
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self';"
        " base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

app = resolver()


def _file(name: str) -> Response[str]:
    return Response(status_code=200, content_type=FILES[name], body=CONTENT[name], headers=HEADERS)


@app.get(
    "/console",
    summary="The operator console",
    description="A page for a browser: sign in with an operator JWT (kept for the tab only), then watch and steer.",
    responses={200: {"description": "the console's page", "content": {"text/html": {}}}, **ERROR_RESPONSES},
    tags=["console"],
)
def page() -> Response[str]:
    return _file("index.html")


@app.get(
    "/console/<asset>",
    summary="The console's scripts and stylesheet",
    responses={200: {"description": "the file", "content": {"text/javascript": {}, "text/css": {}}}, **ERROR_RESPONSES},
    tags=["console"],
)
def asset(
    asset: Annotated[
        Literal["api.js", "jobs.js", "devices.js", "groups.js", "templates.js", "app.js", "app.css"], PathParam()
    ],
) -> Response[str]:
    return _file(asset)


lambda_handler = handler_for(app)
