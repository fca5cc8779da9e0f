"""/openapi.json comes from the handlers' code; the committed copy must not drift from it."""

from __future__ import annotations

from jobs_local import openapi, template


def test_the_committed_openapi_json_matches_the_code() -> None:
    assert openapi.COMMITTED.read_text() == openapi.render(), "run `make openapi` and commit openapi.json"


def test_it_lists_every_route_of_the_template_with_both_security_schemes() -> None:
    schema = openapi.schema()
    documented = {(method.upper(), path) for path, ops in schema["paths"].items() for method in ops}
    routed = {(route.method, route.path) for route in template.routes() if not route.greedy}
    assert documented == routed
    # jobs; the fleet; AWS IoT Jobs' data and control planes; the console; AWS IoT's things and thing groups;
    # job templates, natively and through AWS IoT's control plane
    assert len(routed) == 10 + 15 + 4 + 11 + 2 + 13 + 4 + 4
    assert set(schema["components"]["securitySchemes"]) == {"provisionToken", "operatorJwt"}
    put = schema["paths"]["/device/v1/jobs/{job_id}/execution"]["put"]
    assert put["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ExecutionUpdate"
    }
