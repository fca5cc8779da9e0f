"""template.yaml, read as SAM reads it: the routes, the handlers and /openapi.json agree, and
the deployment carries what an operations team needs."""

from __future__ import annotations

from typing import Any

from jobs_core.settings import Settings
from jobs_local import openapi, template
from jobs_local.devdb import ROOT


def resources(kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template.load()["Resources"].items() if r["Type"] == kind}


def test_each_handler_serves_exactly_the_routes_the_template_gives_it() -> None:
    for function in {route.function: route for route in template.routes()}.values():
        given = {(r.method, r.path) for r in template.routes() if r.function == function.function and not r.greedy}
        module = __import__(function.module)
        served = {
            (method.upper(), path)
            for path, ops in module.app.get_openapi_schema(security_schemes=openapi.SECURITY_SCHEMES)
            .model_dump(by_alias=True)["paths"]
            .items()
            for method in ops
            if ops[method] is not None and method in ("get", "put", "post", "delete", "patch")
        }
        assert served == given, function.function


def test_every_other_path_of_the_aws_apis_reaches_their_function() -> None:
    greedy = {(r.method, r.path, r.function) for r in template.routes() if r.greedy}
    assert greedy == {
        ("ANY", "/iot-jobs-data/{proxy+}", "AwsJobsDataFunction"),
        ("ANY", "/iot/{proxy+}", "AwsIotFunction"),
    }


def test_template_routes_and_the_openapi_document_agree() -> None:
    documented = {(m.upper(), p) for p, ops in openapi.schema()["paths"].items() for m in ops}
    assert documented == {(r.method, r.path) for r in template.routes() if not r.greedy}


def test_device_routes_skip_the_jwt_authorizer_and_are_throttled_operator_routes_are_not() -> None:
    for name, function in template.functions().items():
        for event in function["Properties"].get("Events", {}).values():
            if event["Type"] != "HttpApi":
                continue
            path, settings = event["Properties"]["Path"], event["Properties"].get("RouteSettings", {})
            if path.startswith(("/device/", "/iot-jobs-data/")):
                assert event["Properties"]["Auth"] == {"Authorizer": "NONE"}, (name, path)
                assert set(settings) == {"ThrottlingRateLimit", "ThrottlingBurstLimit"}, (name, path)
            elif path.startswith("/console"):  # the page asks for the token and sends it itself
                assert event["Properties"]["Auth"] == {"Authorizer": "NONE"}, (name, path)
            else:
                assert path.startswith(("/customer/", "/iot/")) and "Auth" not in event["Properties"], (name, path)


def test_what_operations_needs_is_declared() -> None:
    globals_ = template.load()["Globals"]["Function"]
    assert globals_["Runtime"] == "python3.13" and globals_["Architectures"] == ["arm64"]
    assert globals_["Tracing"] == "Active"
    assert set(globals_["VpcConfig"]) == {"SubnetIds", "SecurityGroupIds"}
    assert globals_["LoggingConfig"] == {"LogFormat": "JSON", "LogGroup": "JobsLogGroup"}
    assert "RetentionInDays" in resources("AWS::Logs::LogGroup")["JobsLogGroup"]["Properties"]
    assert resources("AWS::RDS::DBProxy")["JobsDbProxy"]["Properties"]["RequireTLS"] is True
    sweep = template.functions()["SweepExpiredFunction"]["Properties"]
    assert sweep["ReservedConcurrentExecutions"] == 1
    assert sweep["Events"]["EveryMinute"]["Properties"]["ScheduleExpression"] == "rate(1 minute)"
    assert set(resources("AWS::CloudWatch::Alarm")) == {
        "Api5xxRateAlarm",
        "SweepFailingAlarm",
        "ProxySessionPinningAlarm",
    }
    assert resources("Custom::DatabaseSchema")["DatabaseSchema"]["Properties"]["ServiceToken"]


def test_every_function_may_read_its_database_secret_and_nothing_runs_migrations_on_requests() -> None:
    for name, function in template.functions().items():
        policies = function["Properties"]["Policies"]
        if name == "OperatorConsoleFunction":  # static files: no database, no secret
            assert policies == []
            continue
        assert any("AWSSecretsManagerGetSecretValuePolicy" in policy for policy in policies), name
    routed = {route.module for route in template.routes()}
    for module_name in routed:
        source = (ROOT / "functions" / module_name / f"{module_name}.py").read_text()
        assert "migrate" not in source, module_name


def test_the_proxy_pins_nothing_and_an_alarm_says_if_it_does() -> None:
    """Issue 15: nothing the functions send pins a session (tests/integration/test_pooler.py runs
    them through a transaction pooler); the proxy's own connections carry the device calls'
    statement timeout, and session pinning raises an alarm."""
    pool = resources("AWS::RDS::DBProxyTargetGroup")["JobsDbProxyTargetGroup"]["Properties"]
    assert pool["ConnectionPoolConfigurationInfo"]["InitQuery"] == "SET statement_timeout = 5000"
    assert "SessionPinningFilters" not in pool["ConnectionPoolConfigurationInfo"]  # nothing excused
    alarms = resources("AWS::CloudWatch::Alarm").values()
    pinned = [
        a["Properties"]
        for a in alarms
        if a["Properties"].get("MetricName") == "DatabaseConnectionsCurrentlySessionPinned"
    ]
    assert len(pinned) == 1 and pinned[0]["Threshold"] == 0
    assert pinned[0]["Dimensions"] == [{"Name": "ProxyName", "Value": "JobsDbProxy"}]  # a Ref, as loaded


# Every function whose calls may commit work that is due for a device (and so wake the push drain).
WAKERS = {
    "DeviceStartNextFunction",
    "DeviceUpdateExecutionFunction",
    "AwsJobsDataFunction",
    "OperatorCreateJobFunction",
    "OperatorCancelJobFunction",
    "OperatorCancelExecutionFunction",
    "OperatorAddGroupMemberFunction",
    "OperatorAddGroupMembersFunction",
    "OperatorRemoveGroupMemberFunction",
    "OperatorRegisterDeviceFunction",
    "OperatorImportDevicesFunction",
    "AwsIotFunction",
    "SweepExpiredFunction",
}
PUSH_FUNCTION_NAME = "${AWS::StackName}-push-notify"  # a !Sub, as loaded


def test_the_push_drain_runs_every_minute_under_a_fixed_name_and_publishes_under_its_prefix_only() -> None:
    loaded = template.load()
    push = template.functions()["PushNotifyFunction"]
    props = push["Properties"]
    assert props["FunctionName"] == PUSH_FUNCTION_NAME and props["Handler"] == "push_notify.lambda_handler"
    assert push["DependsOn"] == "DatabaseSchema" and "VpcConfig" not in props  # the Globals' VPC, as the others
    assert props["Events"]["EveryMinute"] == {
        "Type": "ScheduleV2",
        "Properties": {"ScheduleExpression": "rate(1 minute)"},
    }
    assert 1 <= props["ReservedConcurrentExecutions"] <= 8 and props["Timeout"] == 60
    statements = [s for p in props["Policies"] if isinstance(p, dict) and "Statement" in p for s in p["Statement"]]
    assert statements == [
        {
            "Effect": "Allow",
            "Action": "iot:Publish",
            "Resource": "arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:topic/${PushTopicPrefix}/*",
        }
    ]
    env = loaded["Globals"]["Function"]["Environment"]["Variables"]
    assert env["IOT_DATA_ENDPOINT"] == "IotDataEndpoint" and env["PUSH_TOPIC_PREFIX"] == "PushTopicPrefix"
    assert env["PUSH_FUNCTION_NAME"] == ["PushOn", PUSH_FUNCTION_NAME, ""]  # no wakes when push is off
    assert loaded["Conditions"]["PushOn"] == [["IotDataEndpoint", ""]]  # !Not [!Equals [!Ref ..., ""]], as loaded
    parameters = loaded["Parameters"]
    assert parameters["IotDataEndpoint"]["Default"] == ""
    prefix = Settings.model_json_schema()["properties"]["push_topic_prefix"]
    assert parameters["PushTopicPrefix"]["AllowedPattern"] == prefix["pattern"]  # what the settings accept
    assert parameters["PushTopicPrefix"]["Default"] == prefix["default"]


def test_every_function_that_may_wake_the_drain_may_invoke_it_and_no_other() -> None:
    functions = template.functions()
    assert set(functions) >= WAKERS  # each name is a function of the template
    policy = resources("AWS::IAM::ManagedPolicy")["WakePushPolicy"]["Properties"]["PolicyDocument"]
    assert policy["Statement"] == [
        {
            "Effect": "Allow",
            "Action": "lambda:InvokeFunction",
            "Resource": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:" + PUSH_FUNCTION_NAME,
        }
    ]
    may_wake = {name for name, function in functions.items() if "WakePushPolicy" in function["Properties"]["Policies"]}
    assert may_wake == WAKERS
    for name, function in functions.items():  # no other way to invoke a function
        assert "lambda:InvokeFunction" not in str(function["Properties"]["Policies"]), name


def test_iot_core_asks_the_authorizer_function_and_only_iot_core_may() -> None:
    function = template.functions()["IotAuthorizerFunction"]
    props = function["Properties"]
    assert props["Handler"] == "iot_authorizer.lambda_handler" and props["CodeUri"] == "functions/iot_authorizer"
    assert function["DependsOn"] == "DatabaseSchema" and "VpcConfig" not in props and "Events" not in props
    assert props["Environment"]["Variables"]["POWERTOOLS_TRACE_DISABLED"] == "true"  # on every device's CONNECT
    (authorizer_id, authorizer) = resources("AWS::IoT::Authorizer").popitem()
    assert authorizer["Condition"] == "PushOn"
    assert authorizer["Properties"] == {
        "AuthorizerName": "${AWS::StackName}-devices",
        "AuthorizerFunctionArn": "IotAuthorizerFunction.Arn",
        "SigningDisabled": True,
        "Status": "ACTIVE",
        "EnableCachingForHttp": False,
    }
    (permission,) = resources("AWS::Lambda::Permission").values()
    assert permission["Condition"] == "PushOn"
    assert permission["Properties"] == {
        "Action": "lambda:InvokeFunction",
        "FunctionName": "IotAuthorizerFunction.Arn",
        "Principal": "iot.amazonaws.com",
        "SourceAccount": "AWS::AccountId",
        "SourceArn": f"{authorizer_id}.Arn",
    }
    output = template.load()["Outputs"]["DeviceAuthorizerName"]
    assert output["Condition"] == "PushOn" and output["Value"] == authorizer_id
