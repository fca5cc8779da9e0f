"""What a job and a job template share in AWS IoT's shapes, in both directions: the document (JSON
text; ours keeps it as document_params, its "operation" as the document_type) and the configs
(timeoutConfig, jobExecutionsRetryConfig, jobExecutionsRolloutConfig, abortConfig,
presignedUrlConfig: our timeout_minutes, retry, rollout, abort, presigned_url_config).
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from jobs_core.aws.shapes import AwsError, CreateJobRequest
from jobs_core.aws.template_shapes import CreateJobTemplateRequest
from jobs_core.domain.models import JobSummary
from jobs_core.domain.templates import TemplateDetail
from jobs_core.native.http import strict_json

Body = TypeVar("Body", bound=BaseModel)


def document_fields(text: str | None) -> dict[str, Any]:
    """A document as our document_type and document_params."""
    if text is None:
        raise AwsError("InvalidRequestException", "give the document")
    try:
        document = strict_json(text)  # as jsonb takes it: no NaN, no overflow, not too deep for the parser
    except ValueError:
        raise AwsError("InvalidRequestException", "the document must be a JSON object") from None
    operation = document.get("operation")
    return {
        "document_type": operation if isinstance(operation, str) and 0 < len(operation) <= 100 else "document",
        "document_params": document,
    }


def settings_fields(request: CreateJobRequest | CreateJobTemplateRequest) -> dict[str, Any]:
    """The configs the request gives, as our settings (those it does not give are left out: a job
    from a template keeps the template's)."""
    fields: dict[str, Any] = {}
    if request.timeoutConfig is not None:
        fields["timeout_minutes"] = request.timeoutConfig.inProgressTimeoutInMinutes
    if request.jobExecutionsRetryConfig is not None:
        fields["retry"] = [
            {"failure_type": c.failureType, "number_of_retries": c.numberOfRetries}
            for c in request.jobExecutionsRetryConfig.criteriaList
        ]
    if (rollout := request.jobExecutionsRolloutConfig) is not None:
        fields["rollout"] = {"maximum_per_minute": rollout.maximumPerMinute}
        if (rate := rollout.exponentialRate) is not None:
            criteria = rate.rateIncreaseCriteria
            fields["rollout"]["exponential_rate"] = {
                "base_rate_per_minute": rate.baseRatePerMinute,
                "increment_factor": rate.incrementFactor,
                "rate_increase_criteria": {
                    k: v
                    for k, v in (
                        ("number_of_notified_things", criteria.numberOfNotifiedThings),
                        ("number_of_succeeded_things", criteria.numberOfSucceededThings),
                    )
                    if v is not None
                },
            }
    if request.abortConfig is not None:
        fields["abort"] = [
            {
                "failure_type": c.failureType,
                "action": c.action,
                "threshold_percentage": c.thresholdPercentage,
                "min_number_of_executed_things": c.minNumberOfExecutedThings,
            }
            for c in request.abortConfig.criteriaList
        ]
    if (presigned := request.presignedUrlConfig) is not None:
        fields["presigned_url_config"] = {
            k: v
            for k, v in (("expires_in_sec", presigned.expiresInSec), ("role_arn", presigned.roleArn))
            if v is not None
        }
    return fields


def configs_shown(detail: JobSummary | TemplateDetail) -> dict[str, Any]:
    """Our settings in AWS's names, those that are set."""
    out: dict[str, Any] = {}
    if detail.timeout_minutes is not None:
        out["timeoutConfig"] = {"inProgressTimeoutInMinutes": detail.timeout_minutes}
    if detail.retry:
        out["jobExecutionsRetryConfig"] = {
            "criteriaList": [
                {"failureType": c["failure_type"], "numberOfRetries": c["number_of_retries"]} for c in detail.retry
            ]
        }
    if detail.rollout:
        rollout: dict[str, Any] = {}
        if detail.rollout.get("maximum_per_minute") is not None:
            rollout["maximumPerMinute"] = detail.rollout["maximum_per_minute"]
        if (rate := detail.rollout.get("exponential_rate")) is not None:
            criteria = rate["rate_increase_criteria"]
            rollout["exponentialRate"] = {
                "baseRatePerMinute": rate["base_rate_per_minute"],
                "incrementFactor": rate["increment_factor"],
                "rateIncreaseCriteria": {
                    "numberOfNotifiedThings": criteria.get("number_of_notified_things"),
                    "numberOfSucceededThings": criteria.get("number_of_succeeded_things"),
                },
            }
        out["jobExecutionsRolloutConfig"] = rollout
    if detail.abort:
        out["abortConfig"] = {
            "criteriaList": [
                {
                    "failureType": c["failure_type"],
                    "action": c["action"],
                    "thresholdPercentage": c["threshold_percentage"],
                    "minNumberOfExecutedThings": c["min_number_of_executed_things"],
                }
                for c in detail.abort
            ]
        }
    if (presigned := detail.presigned_url_config) is not None:
        out["presignedUrlConfig"] = {
            "expiresInSec": presigned.get("expires_in_sec", 3600),
            **({"roleArn": presigned["role_arn"]} if presigned.get("role_arn") else {}),
        }
    return out


def validated(model: type[Body], fields: dict[str, Any]) -> Body:
    """Our request body from the fields; its first error as InvalidRequestException."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        raise AwsError("InvalidRequestException", f"{where}: {first.get('msg', 'invalid')}"[:300]) from None
