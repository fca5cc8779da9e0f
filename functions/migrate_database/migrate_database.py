"""The CloudFormation custom resource that applies the schema migrations on every deploy.

Runs as the schema's owner (the migration secret), never on a request path. Whatever
happens, CloudFormation gets an answer, or the stack would wait for an hour.
"""

import json
import urllib.request
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from jobs_core.observability import logger
from jobs_core.settings import settings
from jobs_core.store.db import conninfo_from
from jobs_core.store.migrate import migrate


def answer(event: dict[str, Any], context: LambdaContext, status: str, reason: str, data: dict[str, Any]) -> None:
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason[:1000],
            "PhysicalResourceId": event.get("PhysicalResourceId") or "iot-jobs-schema",
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
            "Data": data,
        }
    ).encode()
    request = urllib.request.Request(event["ResponseURL"], data=body, method="PUT")  # noqa: S310 (CloudFormation's URL)
    request.add_header("Content-Type", "")
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310
        pass


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> None:
    if event["RequestType"] == "Delete":  # the schema outlives the stack: keep the data
        answer(event, context, "SUCCESS", "kept", {})
        return
    try:
        applied = migrate(conninfo_from(settings())(True))
    except Exception as exc:
        logger.exception("migration failed")
        answer(event, context, "FAILED", f"migration failed: {type(exc).__name__}: {exc}", {})
        return
    logger.info("migrations applied", extra={"applied": applied})
    answer(event, context, "SUCCESS", f"applied {len(applied)}", {"Applied": ",".join(applied) or "none"})
