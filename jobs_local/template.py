"""The routes of template.yaml, read the way SAM reads them: the one route table there is."""

from __future__ import annotations

import importlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml

from jobs_local.devdb import ROOT

TEMPLATE = ROOT / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation short forms (!Ref, !Sub, !GetAtt...) as plain values."""


def _any_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    assert isinstance(node, yaml.MappingNode)
    return loader.construct_mapping(node)


_CfnLoader.add_multi_constructor("!", _any_tag)


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # as in the template: /device/v1/jobs/{job_id}/execution
    function: str  # logical id
    code_uri: Path
    handler: str  # module.function
    authorized: bool  # behind the API's default JWT authorizer

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def module(self) -> str:
        return self.handler.rsplit(".", 1)[0]

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """The path parameters, percent-decoded as API Gateway passes them, if this route serves it."""
        if method != self.method and self.method != "ANY":
            return None
        found = _path_pattern(self.path).fullmatch(path)
        return {name: unquote(value) for name, value in found.groupdict().items()} if found else None

    @property
    def greedy(self) -> bool:
        """A catch-all ({proxy+}): what a function answers for every other path of its API."""
        return self.path.endswith("+}")

    @property
    def specificity(self) -> tuple[int, int, int]:
        """API Gateway's choice among routes that match: a greedy {proxy+} last, then the route with
        the most literal segments, then a method over ANY."""
        segments = self.path.strip("/").split("/")
        greedy = any(segment.endswith("+}") for segment in segments)
        literal = sum(not segment.startswith("{") for segment in segments)
        return (int(greedy), -literal, int(self.method == "ANY"))

    def lambda_handler(self) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
        return _handler(self.handler)


@cache
def _handler(name: str) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """module.function, imported once. The handler's folder is on sys.path in the dev environment,
    as /var/task is in Lambda."""
    module_name, function = name.rsplit(".", 1)
    handler: Callable[[dict[str, Any], Any], dict[str, Any]] = getattr(importlib.import_module(module_name), function)
    return handler


@cache
def _path_pattern(path: str) -> re.Pattern[str]:
    """/device/v1/jobs/{job_id}/execution as a regular expression with a group per parameter; a
    greedy {proxy+} takes the rest of the path."""
    escaped = re.sub(r"\\\{(\w+)\\\+\\\}", r"(?P<\1>.+)", re.escape(path))
    return re.compile(re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", escaped))


@cache
def load() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)  # noqa: S506 (a SafeLoader subclass)
    return loaded


def functions() -> dict[str, dict[str, Any]]:
    return {name: res for name, res in load()["Resources"].items() if res["Type"] == "AWS::Serverless::Function"}


def routes() -> list[Route]:
    found = []
    for name, res in functions().items():
        props = res["Properties"]
        for event in props.get("Events", {}).values():
            if event["Type"] != "HttpApi":
                continue
            auth = event["Properties"].get("Auth", {})
            found.append(
                Route(
                    method=event["Properties"]["Method"].upper(),
                    path=event["Properties"]["Path"],
                    function=name,
                    code_uri=ROOT / props["CodeUri"],
                    handler=props["Handler"],
                    authorized=auth.get("Authorizer") != "NONE",
                )
            )
    return found


def route_for(method: str, path: str, among: list[Route] | None = None) -> tuple[Route, dict[str, str]] | None:
    """The route that serves method and path (of `among`, else of the template), with its path parameters."""
    for route in sorted(among if among is not None else routes(), key=lambda route: route.specificity):
        params = route.match(method, path)
        if params is not None:
            return route, params
    return None


@dataclass(frozen=True)
class Scheduled:
    """A function the template runs on a schedule (rate(...) expressions), with its event file."""

    function: str  # logical id
    handler: str  # module.function
    every_s: float

    def lambda_handler(self) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
        return _handler(self.handler)

    @property
    def module(self) -> str:
        return self.handler.rsplit(".", 1)[0]

    def event(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads((ROOT / "events" / f"{self.handler.rsplit('.', 1)[0]}.json").read_text())
        return loaded


RATE = re.compile(r"rate\((\d+) (minutes?|hours?|days?)\)")
UNIT_S = {"minute": 60, "hour": 3600, "day": 86400}


def schedules() -> list[Scheduled]:
    """The template's scheduled functions. LOCAL_SCHEDULE_EVERY_S, when set, replaces every rate
    (tests run the schedule in seconds, not minutes)."""
    override = os.environ.get("LOCAL_SCHEDULE_EVERY_S")
    found = []
    for name, res in functions().items():
        props = res["Properties"]
        for event in props.get("Events", {}).values():
            if event["Type"] not in ("Schedule", "ScheduleV2"):
                continue
            rate = RATE.fullmatch(event["Properties"]["ScheduleExpression"])
            if rate is None:
                raise ValueError(f"{name}: only rate(...) schedules run locally")
            every = int(rate.group(1)) * UNIT_S[rate.group(2).rstrip("s")]
            found.append(Scheduled(name, props["Handler"], float(override) if override else every))
    return found
