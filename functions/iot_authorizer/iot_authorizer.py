"""AWS IoT Core's custom authorizer for the devices' MQTT connections (push): username = the device
id, password = its provision token, client id = `{device_id}@{tenant_id}`; the answer is a policy
that lets the device subscribe to its own topics and receive what is published there, nothing else
(jobs_core/aws/iot_authorizer.py), or a refusal. Invoked by IoT Core on every CONNECT and every
refresh."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobs_core.aws import iot_authorizer as authorizer
from jobs_core.observability import logger, metrics, traced
from jobs_core.store.db import database


@logger.inject_lambda_context(log_event=False)  # never, whatever POWERTOOLS_LOGGER_LOG_EVENT says: it holds the token
@metrics.log_metrics
def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    answer = authorizer.authorize(database(), event, context.invoked_function_arn)
    name = "MqttConnectsAllowed" if answer["isAuthenticated"] else "MqttConnectsRefused"
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
    return answer


lambda_handler = traced(handle)
