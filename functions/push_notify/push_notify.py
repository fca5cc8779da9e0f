"""Publish what the push outbox holds (AWS IoT Jobs' notify-next and notify messages): invoked
asynchronously by the API's functions after a commit that made work due, and every minute by the
schedule, which publishes whatever a lost invocation left. Drains until the outbox is empty or
the invocation's time is nearly up; a broker that is away leaves everything for the next run."""

import time
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobs_core.aws import notify
from jobs_core.domain import notifications
from jobs_core.observability import logger, metrics, traced
from jobs_core.store.db import database

SPARE_MS = 10_000  # of the invocation's time, left for the batch in flight to finish


@logger.inject_lambda_context
@metrics.log_metrics
def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    publisher = notify.publisher()
    until = time.monotonic() + max(0, context.get_remaining_time_in_millis() - SPARE_MS) / 1000
    if publisher is None:  # push is off: what the outbox holds is dropped, not kept for ever
        return {"published": 0, "dropped": notifications.drain(database(), lambda notices: None, until=until)}
    try:
        done = notifications.drain(database(), lambda notices: notify.publish_notices(publisher, notices), until=until)
    except notify.PublishFailed as exc:
        logger.warning("push: the broker did not take a batch; it stays in the outbox", extra={"error": str(exc)})
        return {"published": 0, "failed": True}
    metrics.add_metric(name="PushNotices", unit=MetricUnit.Count, value=done)
    return {"published": done}


lambda_handler = traced(handle)
