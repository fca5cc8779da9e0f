"""Scheduled every minute: time out the executions that are due (expired jobs, in-progress and step
timeouts), retry those with a retry left, abort or complete the jobs that finished; then drive the
rollouts (start scheduled jobs, release executions at their job's rate, end jobs at end_time)."""

import time
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobs_core.domain.sweep import sweep
from jobs_core.observability import logger, metrics, traced
from jobs_core.store.db import database


@logger.inject_lambda_context
@metrics.log_metrics
def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    started = time.perf_counter()
    result = sweep(database())
    metrics.add_metric(name="SweepDuration", unit=MetricUnit.Milliseconds, value=(time.perf_counter() - started) * 1000)
    metrics.add_metric(name="ExecutionsTimedOut", unit=MetricUnit.Count, value=result.timed_out)
    metrics.add_metric(name="ExecutionsRetried", unit=MetricUnit.Count, value=result.retried)
    metrics.add_metric(name="JobsCompleted", unit=MetricUnit.Count, value=result.completed)
    metrics.add_metric(name="SweepRowsFailed", unit=MetricUnit.Count, value=result.failed)
    metrics.add_metric(name="JobsAborted", unit=MetricUnit.Count, value=result.aborted)
    metrics.add_metric(name="JobsStarted", unit=MetricUnit.Count, value=result.started)
    metrics.add_metric(name="JobsEnded", unit=MetricUnit.Count, value=result.ended)
    metrics.add_metric(name="ExecutionsReleased", unit=MetricUnit.Count, value=result.released)
    metrics.add_metric(name="ExecutionsStopped", unit=MetricUnit.Count, value=result.stopped)
    logger.info("sweep done", extra=result.model_dump())
    return result.model_dump()


lambda_handler = traced(handle)
