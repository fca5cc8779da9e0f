"""Scheduled every minute: time out the executions of expired jobs and complete finished jobs."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobs_core.api import logger, metrics
from jobs_core.db import database
from jobs_core.sweep import sweep


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = sweep(database())
    metrics.add_metric(name="ExecutionsTimedOut", unit=MetricUnit.Count, value=result.timed_out)
    metrics.add_metric(name="JobsCompleted", unit=MetricUnit.Count, value=result.completed)
    logger.info("sweep done", extra=result.model_dump())
    return result.model_dump()
