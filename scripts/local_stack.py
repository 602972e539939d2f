#!/usr/bin/env python3
"""Local stand-ins for the stack in template.yaml, for `make dev` and manual testing.

Subcommands:
  create-table  create the DynamoDB table in an emulator from Resources.Table in template.yaml
  create-bus    create the custom EventBridge bus
  seed-demo     seed a small Identity Center directory (users, groups, memberships)
  demo-users    print that directory's users, for the local OpenID Connect provider (scripts/oidc)
  gateway       a local API Gateway HTTP API (payload format 2.0) that routes the template's
                HttpApi events, the paths of an HttpApi's DefinitionBody and
                AWS::ApiGatewayV2::Route resources to `cargo lambda watch`: an IAM-authorized
                caller on AWS_IAM routes, no authorizer on NONE routes
  routes        print those routes
  sso-admin     IAM Identity Center's ListInstances, answering with one instance
  forward       deliver the stack's bus events to their functions, as the template's rules do
  stream        hand the table's DynamoDB stream to its functions (publish-events), as the
                template's DynamoDB events do: its filter, batch size and partial batch responses
  wait-for      wait until a URL answers (any HTTP status, or one below --below)
  param         print the Default of one of the template's Parameters
  activity-report  write today's user activity report for demo users to S3 and deliver it to
                ingest-activity (what Kiro, S3 and the UserActivityReport rule do in AWS)
  function-env  print the functions' environment as far as the template alone decides it
  binaries      print the binaries of the template's functions

Everything about the stack (table schema, routes, bus name) is read from template.yaml; nothing
here repeats it. Needs boto3 and PyYAML, which the project's .venv has (they come with moto).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TEMPLATE = ROOT / "template.yaml"
LOCAL_ACCOUNT_ID = "000000000000"
DEFAULT_USER_ARN = f"arn:aws:iam::{LOCAL_ACCOUNT_ID}:user/local-admin"


# --------------------------------------------------------------------------------------------
# template.yaml


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that accepts CloudFormation's short-form tags (!Ref, !Sub, !GetAtt, ...)."""


def _cfn_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {"Ref" if suffix == "Ref" else f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


def load_template(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


def _intrinsics(value: Any, where: str = "") -> list[str]:
    """Paths of every intrinsic function (Ref / Fn::*) inside `value`."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "Ref" or key.startswith("Fn::"):
                found.append(f"{where}.{key}" if where else key)
            else:
                found.extend(_intrinsics(item, f"{where}.{key}" if where else key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found.extend(_intrinsics(item, f"{where}[{i}]"))
    return found


def table_properties(template: dict[str, Any]) -> dict[str, Any]:
    props = template["Resources"]["Table"]["Properties"]
    bad = _intrinsics(props)
    if bad:
        sys.exit(
            "template.yaml: Resources.Table.Properties must be literal (local tools read them "
            f"as they are), but contains intrinsic functions at: {', '.join(bad)}"
        )
    return props


# --------------------------------------------------------------------------------------------
# AWS clients against an emulator


def _client(service: str, endpoint: str) -> Any:
    import boto3  # imported lazily: the gateway needs no AWS SDK

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
    )


def _error_code(err: Exception) -> str:
    return getattr(err, "response", {}).get("Error", {}).get("Code", "")


def _key_shape(key_schema: list[dict[str, str]]) -> list[tuple[str, str]]:
    return [(k["AttributeName"], k["KeyType"]) for k in key_schema]


def _index_shapes(indexes: list[dict[str, Any]] | None) -> dict[str, list[tuple[str, str]]]:
    return {i["IndexName"]: _key_shape(i["KeySchema"]) for i in indexes or []}


def cmd_create_table(args: argparse.Namespace) -> None:
    props = table_properties(load_template(args.template))
    ddb = _client("dynamodb", args.endpoint)

    request: dict[str, Any] = {
        "TableName": args.name,
        "KeySchema": props["KeySchema"],
        "AttributeDefinitions": props["AttributeDefinitions"],
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
    }
    if props.get("GlobalSecondaryIndexes"):
        request["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    if props.get("LocalSecondaryIndexes"):
        request["LocalSecondaryIndexes"] = props["LocalSecondaryIndexes"]
    stream_view = (props.get("StreamSpecification") or {}).get("StreamViewType")
    if stream_view:
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream_view}

    try:
        ddb.create_table(**request)
        created = True
    except Exception as err:  # botocore's ClientError; kept generic to import boto3 lazily
        if _error_code(err) != "ResourceInUseException":
            raise
        created = False
    ddb.get_waiter("table_exists").wait(TableName=args.name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})

    # An existing table must have the template's shape, or tests would pass against a stale one.
    table = ddb.describe_table(TableName=args.name)["Table"]
    want = (_key_shape(props["KeySchema"]), _index_shapes(props.get("GlobalSecondaryIndexes")))
    have = (_key_shape(table["KeySchema"]), _index_shapes(table.get("GlobalSecondaryIndexes")))
    if want != have:
        sys.exit(
            f"table {args.name} exists with another key schema or indexes than template.yaml; "
            "restart the emulator (make dev-down) to recreate it"
        )
    have_stream = (table.get("StreamSpecification") or {}).get("StreamViewType")
    if have_stream != stream_view:
        sys.exit(
            f"table {args.name} streams {have_stream}, template.yaml says {stream_view}; "
            "restart the emulator (make dev-down) to recreate it"
        )

    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        current = ddb.describe_time_to_live(TableName=args.name)["TimeToLiveDescription"]
        if current.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
            if current.get("AttributeName") != ttl["AttributeName"]:
                sys.exit(
                    f"table {args.name} has TTL on {current.get('AttributeName')}, template says {ttl['AttributeName']}"
                )
        else:
            ddb.update_time_to_live(
                TableName=args.name,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )

    print(json.dumps({"table": args.name, "created": created}))


def parameter_default(template: dict[str, Any], name: str) -> str:
    return str(template["Parameters"][name]["Default"])


def cmd_param(args: argparse.Namespace) -> None:
    print(parameter_default(load_template(args.template), args.name))


def function_env(template: dict[str, Any]) -> dict[str, str]:
    """The functions' environment (Globals first, then each function) as far as the template
    alone decides it: literals, and !Ref to a Parameter by its Default. Whatever depends on the
    deployed stack (the table's name, ARNs) is left to the caller."""
    params = template.get("Parameters") or {}
    sources = [(((template.get("Globals") or {}).get("Function") or {}).get("Environment") or {}).get("Variables")]
    for resource in (template.get("Resources") or {}).values():
        if resource.get("Type") == "AWS::Serverless::Function":
            sources.append((((resource.get("Properties") or {}).get("Environment") or {}).get("Variables")))
    env: dict[str, str] = {}
    for variables in sources:
        for name, value in (variables or {}).items():
            if isinstance(value, dict) and set(value) == {"Ref"} and "Default" in (params.get(value["Ref"]) or {}):
                value = params[value["Ref"]]["Default"]
            if isinstance(value, (str, int, float)) and not isinstance(value, bool):
                env[name] = str(value)
    return env


def cmd_function_env(args: argparse.Namespace) -> None:
    env = function_env(load_template(args.template))
    for name in args.names or sorted(env):
        if name in env:
            print(f"{name}={env[name]}")


def cmd_create_bus(args: argparse.Namespace) -> None:
    name = args.name or parameter_default(load_template(args.template), "EventBusName")
    events = _client("events", args.endpoint)
    try:
        events.create_event_bus(Name=name)
        created = True
    except Exception as err:
        if _error_code(err) != "ResourceAlreadyExistsException":
            raise
        created = False
    print(json.dumps({"eventBus": name, "created": created}))


# A small directory: one user with no group (for direct subscriptions), one in two groups.
# The local OpenID Connect provider (scripts/oidc) signs in exactly these users (`demo-users`).
DEMO_USERS = [
    ("alice", "Alice", "Johnson"),
    ("bob", "Bob", "Smith"),
    ("carol", "Carol", "Diaz"),
    ("dave", "Dave", "Kim"),
    ("erin", "Erin", "Brown"),
    ("frank", "Frank", "Miller"),
]
# The console's roles are Identity Center groups (CONSOLE_ADMIN_GROUP / CONSOLE_VIEWER_GROUP,
# whose defaults these are): alice may change things, bob may only look, the others get 403.
# They come last so that the first page of the directory stays the product's groups.
DEMO_GROUPS = [
    ("engineering", "Product engineering", ["alice", "bob", "erin"]),
    ("data-science", "Data science and analytics", ["alice", "carol"]),
    ("contractors", "External contractors", ["dave", "erin"]),
    ("KiroAdmins", "Kiro console administrators", ["alice"]),
    ("KiroViewers", "Kiro console viewers (read only)", ["bob"]),
]


def demo_user_records() -> list[dict[str, Any]]:
    """The demo users as an identity provider sees them (userName, names, e-mail, groups)."""
    return [
        {
            "userName": user_name,
            "givenName": given,
            "familyName": family,
            "displayName": f"{given} {family}",
            "email": f"{user_name}@example.com",
            "groups": [name for name, _, members in DEMO_GROUPS if user_name in members],
        }
        for user_name, given, family in DEMO_USERS
    ]


def cmd_demo_users(_args: argparse.Namespace) -> None:
    print(json.dumps({"users": demo_user_records()}, indent=2))


def cmd_seed_demo(args: argparse.Namespace) -> None:
    ids = _client("identitystore", args.endpoint)
    store = args.identity_store_id

    def user_id(user_name: str) -> str | None:
        try:
            return ids.get_user_id(
                IdentityStoreId=store,
                AlternateIdentifier={"UniqueAttribute": {"AttributePath": "userName", "AttributeValue": user_name}},
            )["UserId"]
        except Exception as err:
            if _error_code(err) != "ResourceNotFoundException":
                raise
            return None

    def group_id(display_name: str) -> str | None:
        try:
            return ids.get_group_id(
                IdentityStoreId=store,
                AlternateIdentifier={
                    "UniqueAttribute": {"AttributePath": "displayName", "AttributeValue": display_name}
                },
            )["GroupId"]
        except Exception as err:
            if _error_code(err) != "ResourceNotFoundException":
                raise
            return None

    users: dict[str, str] = {}
    for record in demo_user_records():
        user_name = record["userName"]
        uid = user_id(user_name)
        if uid is None:
            uid = ids.create_user(
                IdentityStoreId=store,
                UserName=user_name,
                DisplayName=record["displayName"],
                Name={"GivenName": record["givenName"], "FamilyName": record["familyName"]},
                Emails=[{"Value": record["email"], "Type": "work", "Primary": True}],
            )["UserId"]
        users[user_name] = uid

    groups: dict[str, str] = {}
    memberships: list[dict[str, str]] = []
    for display_name, description, members in DEMO_GROUPS:
        gid = group_id(display_name)
        if gid is None:
            gid = ids.create_group(IdentityStoreId=store, DisplayName=display_name, Description=description)["GroupId"]
        groups[display_name] = gid

        # The emulator accepts duplicate memberships, so look before adding.
        existing: dict[str, str] = {}
        for page in ids.get_paginator("list_group_memberships").paginate(IdentityStoreId=store, GroupId=gid):
            for m in page["GroupMemberships"]:
                existing[m["MemberId"]["UserId"]] = m["MembershipId"]
        for member in members:
            uid = users[member]
            membership_id = existing.get(uid)
            if membership_id is None:
                membership_id = ids.create_group_membership(
                    IdentityStoreId=store, GroupId=gid, MemberId={"UserId": uid}
                )["MembershipId"]
            memberships.append({"group": display_name, "user": member, "membershipId": membership_id})

    print(
        json.dumps({"identityStoreId": store, "users": users, "groups": groups, "memberships": memberships}, indent=2)
    )


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect is an answer too


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by the shell that started it) is gone too.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def cmd_wait_for(args: argparse.Namespace) -> None:
    deadline = time.monotonic() + args.timeout
    opener = urllib.request.build_opener(_NoRedirect)
    last = "no answer"
    while True:
        try:
            if args.tcp:
                # Accepting connections is enough (a request to the gateway would start a function).
                host, port = args.url.rsplit(":", 1)
                socket.create_connection((host, int(port)), timeout=2).close()
                return
            opener.open(args.url, timeout=args.request_timeout).close()
            return
        except urllib.error.HTTPError as err:
            if args.below is None or err.code < args.below:
                return  # it answered
            last = f"HTTP {err.code}"
        except (urllib.error.URLError, OSError) as err:
            last = str(getattr(err, "reason", err))
        if args.pid and not _alive(args.pid):
            sys.exit(f"{args.url} will not answer: the process serving it ({args.pid}) has exited")
        if time.monotonic() > deadline:
            wanted = f" below {args.below}" if args.below else ""
            sys.exit(f"{args.url} did not answer{wanted} within {args.timeout:g}s ({last})")
        time.sleep(0.2)


# --------------------------------------------------------------------------------------------
# Local API Gateway HTTP API


@dataclass(frozen=True)
class Route:
    method: str  # upper case, or ANY
    path: str  # as in the template, e.g. /subscriptions/{principalType}/{principalId}
    function: str  # cargo-lambda binary name
    pattern: re.Pattern[str]
    params: int  # number of path variables; fewer wins, as in API Gateway
    # AWS_IAM routes carry requestContext.authorizer.iam; NONE routes (the console's, which
    # signs its users in itself) carry no authorizer at all.
    authorization: str = "AWS_IAM"

    @property
    def key(self) -> str:
        return DEFAULT_ROUTE if self.path == DEFAULT_ROUTE else f"{self.method} {self.path}"

    @property
    def greedy(self) -> bool:
        return "+}" in self.path


# An HttpApi event without Path and Method is the API's catch-all route: API Gateway sends it
# every request no other route matches, with this routeKey.
DEFAULT_ROUTE = "$default"


def _path_pattern(path: str) -> re.Pattern[str]:
    parts = []
    for segment in path.strip("/").split("/"):
        greedy = re.fullmatch(r"\{(\w+)\+\}", segment)
        var = re.fullmatch(r"\{(\w+)\}", segment)
        if greedy:
            parts.append(f"(?P<{greedy.group(1)}>.+)")
        elif var:
            parts.append(f"(?P<{var.group(1)}>[^/]+)")
        else:
            parts.append(re.escape(segment))
    return re.compile("^/" + "/".join(parts) + "$")


def _route(method: str, path: str, binary: str, authorization: str) -> Route:
    if path == DEFAULT_ROUTE:
        return Route("ANY", DEFAULT_ROUTE, binary, re.compile(r"^/.*$", re.S), 1_000, authorization)
    return Route(method.upper(), path, binary, _path_pattern(path), path.count("{"), authorization)


def _binary(template: dict[str, Any], logical_id: str) -> str | None:
    resource = template.get("Resources", {}).get(logical_id) or {}
    return ((resource.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary")


def _referenced_ids(value: Any) -> list[str]:
    """Logical ids that a !Ref, !GetAtt, !Sub (${Id} / ${Id.Attr}) or !Join inside `value` names."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "Ref" and isinstance(item, str):
                found.append(item)
            elif key == "Fn::GetAtt":
                found.append(item[0] if isinstance(item, list) else str(item).split(".", 1)[0])
            elif key == "Fn::Sub":
                text = item[0] if isinstance(item, list) else item
                found.extend(v.split(".", 1)[0] for v in re.findall(r"\$\{([^}!]+)\}", text))
                if isinstance(item, list) and len(item) > 1:
                    found.extend(_referenced_ids(item[1]))
            else:
                found.extend(_referenced_ids(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(_referenced_ids(item))
    return [f for f in found if not f.startswith("AWS::")]


def _api_route_resources(template: dict[str, Any]) -> list[Route]:
    """Routes declared as AWS::ApiGatewayV2::Route resources (outside SAM's HttpApi events):
    Target integrations/<Integration> -> its IntegrationUri -> the function -> its Binary."""
    resources = template.get("Resources", {})
    routes = []
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::ApiGatewayV2::Route":
            continue
        props = resource.get("Properties") or {}
        route_key = props.get("RouteKey")
        if not isinstance(route_key, str):
            sys.exit(f"{logical_id}: RouteKey must be a literal such as 'ANY /console'")
        integrations = [
            i for i in _referenced_ids(props.get("Target"))
            if (resources.get(i) or {}).get("Type") == "AWS::ApiGatewayV2::Integration"
        ]
        if len(integrations) != 1:
            sys.exit(f"{logical_id}: Target must name one AWS::ApiGatewayV2::Integration (integrations/${{Id}})")
        uri = (resources[integrations[0]].get("Properties") or {}).get("IntegrationUri")
        functions = [
            f for f in _referenced_ids(uri) if (resources.get(f) or {}).get("Type") == "AWS::Serverless::Function"
        ]
        binary = _binary(template, functions[0]) if len(functions) == 1 else None
        if not binary:
            sys.exit(
                f"{logical_id}: the IntegrationUri of {integrations[0]} must name one function "
                "(!GetAtt Fn.Arn) that has Metadata.BuildProperties.Binary"
            )
        if route_key == DEFAULT_ROUTE:
            method, path = "ANY", DEFAULT_ROUTE
        else:
            method, _, path = route_key.partition(" ")
        authorization = props.get("AuthorizationType") or "NONE"  # API Gateway's default
        routes.append(_route(method, path, binary, str(authorization).upper()))
    return routes


_OPENAPI_METHODS = {"get", "put", "post", "delete", "options", "head", "patch"}


def _function_by_name(template: dict[str, Any], name: Any) -> str | None:
    """The logical id of the function whose FunctionName is `name` (a literal, or the same !Sub
    text, e.g. ${AWS::StackName}-console), if any."""
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        declared = (resource.get("Properties") or {}).get("FunctionName")
        if isinstance(declared, dict) and set(declared) == {"Fn::Sub"}:
            declared = declared["Fn::Sub"]
        if declared is not None and declared == name:
            return logical_id
    return None


def _integration_function(template: dict[str, Any], uri: Any) -> str | None:
    """The function an integration URI names: by !GetAtt Fn.Arn (or ${Fn.Arn}), or by the
    FunctionName inside arn:...:lambda:path/2015-03-31/functions/arn:...:function:NAME/invocations."""
    resources = template.get("Resources", {})
    named = [f for f in _referenced_ids(uri) if (resources.get(f) or {}).get("Type") == "AWS::Serverless::Function"]
    if len(named) == 1:
        return named[0]
    text = uri.get("Fn::Sub") if isinstance(uri, dict) else uri
    if isinstance(text, list):
        text = text[0]
    m = re.search(r":function:([^/]+)/invocations$", text) if isinstance(text, str) else None
    if not m:
        return None
    # NAME, or NAME:alias (an alias outside any ${...}).
    return _function_by_name(template, m.group(1)) or _function_by_name(template, re.sub(r":[^:}]+$", "", m.group(1)))


def _definition_body_routes(template: dict[str, Any]) -> list[Route]:
    """Routes an HttpApi declares in its DefinitionBody (OpenAPI paths with
    x-amazon-apigateway-integration), as API Gateway imports them: `security: [{NONE: []}]` (or
    an empty list) means no authorizer, no `security` means the API's DefaultAuthorizer, which
    SAM adds to every path of the body."""
    routes = []
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::HttpApi":
            continue
        props = resource.get("Properties") or {}
        default_authorizer = str((props.get("Auth") or {}).get("DefaultAuthorizer", "")).upper()
        default = "AWS_IAM" if default_authorizer == "AWS_IAM" else "NONE"
        for path, operations in ((props.get("DefinitionBody") or {}).get("paths") or {}).items():
            for key, operation in (operations or {}).items():
                if key == "x-amazon-apigateway-any-method":
                    method = "ANY"
                elif key.lower() in _OPENAPI_METHODS:
                    method = key.upper()
                else:
                    continue
                integration = (operation or {}).get("x-amazon-apigateway-integration")
                if not integration:
                    continue
                function = _integration_function(template, integration.get("uri"))
                binary = _binary(template, function) if function else None
                if not binary:
                    sys.exit(
                        f"{logical_id}: DefinitionBody {key} {path}: the integration uri must name one function "
                        "(by ${Fn.Arn} or its FunctionName) that has Metadata.BuildProperties.Binary"
                    )
                if "security" not in operation:
                    authorization = default
                else:
                    schemes = {name.upper() for requirement in operation["security"] or [] for name in requirement}
                    authorization = "AWS_IAM" if "AWS_IAM" in schemes else "NONE"
                route_path = DEFAULT_ROUTE if path == "$default" else path
                routes.append(_route(method, route_path, binary, authorization))
    return routes


def load_routes(template: dict[str, Any]) -> list[Route]:
    routes = []
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        binary = _binary(template, logical_id)
        for event in ((resource.get("Properties") or {}).get("Events") or {}).values():
            if event.get("Type") != "HttpApi":
                continue
            props = event.get("Properties") or {}
            if not binary:
                sys.exit(f"{logical_id}: an HttpApi function needs Metadata.BuildProperties.Binary")
            # The API's DefaultAuthorizer (AWS_IAM) unless the event opts out with Authorizer NONE.
            authorizer = ((props.get("Auth") or {}).get("Authorizer") or "AWS_IAM").upper()
            authorization = "NONE" if authorizer == "NONE" else "AWS_IAM"
            if "Path" not in props and "Method" not in props:
                routes.append(_route("ANY", DEFAULT_ROUTE, binary, authorization))
                continue
            routes.append(_route(props.get("Method", "ANY"), props["Path"], binary, authorization))
    routes.extend(_definition_body_routes(template))
    routes.extend(_api_route_resources(template))
    return routes


def match_route(routes: list[Route], method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    candidates = []
    for route in routes:
        if route.method not in (method, "ANY"):
            continue
        m = route.pattern.match(path)
        if m:
            # API Gateway picks the most specific route: no greedy variable, fewer variables,
            # then an exact method; $default only when nothing else matches.
            default = route.path == DEFAULT_ROUTE
            rank = (default, route.greedy, route.params, route.method == "ANY")
            candidates.append((rank, route, m.groupdict()))
    if not candidates:
        return None
    _, route, params = min(candidates, key=lambda c: c[0])
    return route, {k: urllib.parse.unquote(v) for k, v in params.items()}


def build_event(
    route: Route,
    path_params: dict[str, str],
    method: str,
    raw_path: str,
    raw_query: str,
    headers: list[tuple[str, str]],
    body: bytes,
    source_ip: str,
    user_arn: str,
) -> dict[str, Any]:
    """An API Gateway HTTP API payload format 2.0 event: with requestContext.authorizer.iam for
    an AWS_IAM route, without any authorizer for a route whose AuthorizationType is NONE."""
    now = datetime.now(timezone.utc)
    request_id = str(uuid.uuid4())

    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        name = name.lower()
        if name == "cookie":
            # Format 2.0 moves the Cookie header(s) to `cookies`, one entry a cookie.
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        merged[name] = f"{merged[name]},{value}" if name in merged else value
    host = merged.get("host", "localhost")
    port = host.rsplit(":", 1)[1] if ":" in host else "80"
    merged["x-forwarded-for"] = (
        f"{merged['x-forwarded-for']}, {source_ip}" if "x-forwarded-for" in merged else source_ip
    )
    merged.setdefault("x-forwarded-port", port)
    merged.setdefault("x-forwarded-proto", "http")
    merged.setdefault("x-amzn-trace-id", f"Root=1-{int(now.timestamp()):08x}-{uuid.uuid4().hex[:24]}")

    query: dict[str, str] = {}
    for name, value in urllib.parse.parse_qsl(raw_query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value

    domain = host.rsplit(":", 1)[0]
    user_id = "AIDALOCALADMIN000000"
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": merged,
        "requestContext": {
            "accountId": LOCAL_ACCOUNT_ID,
            "apiId": "local",
            "domainName": domain,
            "domainPrefix": domain.split(".", 1)[0],
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": merged.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": route.key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if route.authorization == "AWS_IAM":
        event["requestContext"]["authorizer"] = {
            "iam": {
                "accessKey": "AKIALOCALADMIN000000",
                "accountId": LOCAL_ACCOUNT_ID,
                "callerId": user_id,
                "cognitoIdentity": None,
                "principalOrgId": None,
                "userArn": user_arn,
                "userId": user_id,
            }
        }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if path_params:
        event["pathParameters"] = path_params
    if body:
        text = _is_text(merged.get("content-type", ""))
        if text:
            try:
                event["body"] = body.decode("utf-8")
            except UnicodeDecodeError:
                text = False
        if not text:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
    return event


# HTTP APIs hand a function the body as text only for these media types; every other body
# (no content-type, and HTML forms' application/x-www-form-urlencoded too) arrives base64-encoded
# with isBase64Encoded. The AWS documentation does not list them; this is AWS's observed split.
_TEXT_MEDIA_TYPES = {"application/json", "application/xml", "application/javascript"}


def _is_text(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media.startswith("text/") or media in _TEXT_MEDIA_TYPES


def translate_response(payload: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    """Turn a function's format 2.0 response into (status, headers, body), as API Gateway does."""
    try:
        doc = json.loads(payload) if payload else None
    except ValueError:
        doc = payload.decode("utf-8", "replace")
    if not isinstance(doc, dict) or "statusCode" not in doc:
        # Without statusCode, API Gateway assumes 200 and a JSON body of whatever was returned.
        return 200, [("content-type", "application/json")], json.dumps(doc).encode()

    headers = [(k, str(v)) for k, v in (doc.get("headers") or {}).items()]
    for name, values in (doc.get("multiValueHeaders") or {}).items():
        headers.extend((name, str(v)) for v in values)
    headers.extend(("set-cookie", c) for c in doc.get("cookies") or [])
    body = doc.get("body")
    if body is None:
        raw = b""
    elif doc.get("isBase64Encoded"):
        raw = base64.b64decode(body)
    else:
        raw = (body if isinstance(body, str) else json.dumps(body)).encode()
    return int(doc["statusCode"]), headers, raw


class _Gateway(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "local-apigw"
    # set in cmd_gateway
    routes: list[Route] = []
    lambda_url = ""
    user_arn = DEFAULT_USER_ARN
    invoke_timeout = 600.0

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # one line per request is written in _handle

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        names = {k.lower() for k, _ in headers}
        for k, v in headers:
            if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(k, v)
        if "content-type" not in names and body:
            self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        started = time.monotonic()
        status = 500
        try:
            status = self._route()
        except Exception as err:  # a bug here must not leave the client hanging
            sys.stderr.write(f"  gateway error: {err!r}\n")
            self._send(500, [("content-type", "application/json")], b'{"message":"Internal Server Error"}')
        finally:
            elapsed = (time.monotonic() - started) * 1000
            sys.stderr.write(f"{self.command} {self.path} {status} {elapsed:.0f}ms\n")
            sys.stderr.flush()

    def _route(self) -> int:
        split = urllib.parse.urlsplit(self.path)
        raw_path, raw_query = split.path or "/", split.query
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""

        found = match_route(self.routes, self.command, raw_path)
        if found is None:
            self._send(404, [("content-type", "application/json")], b'{"message":"Not Found"}')
            return 404
        route, params = found

        event = build_event(
            route,
            params,
            self.command,
            raw_path,
            raw_query,
            list(self.headers.items()),
            body,
            self.client_address[0],
            self.user_arn,
        )
        request_id = event["requestContext"]["requestId"]
        url = f"{self.lambda_url}/2015-03-31/functions/{route.function}/invocations"
        request = urllib.request.Request(
            url, data=json.dumps(event).encode(), method="POST", headers={"content-type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.invoke_timeout) as resp:
                payload = resp.read()
            status, headers, out = translate_response(payload)
        except urllib.error.HTTPError as err:
            # The emulator answers a function error (or a missing function) with a non-2xx and
            # the error document; API Gateway hides it behind a plain 500.
            detail = err.read().decode("utf-8", "replace")
            sys.stderr.write(f"  {route.function} failed ({err.code}): {detail}\n")
            status, headers, out = 500, [("content-type", "application/json")], b'{"message":"Internal Server Error"}'
        except (urllib.error.URLError, OSError, ValueError) as err:
            sys.stderr.write(f"  cannot invoke {route.function} at {url}: {err}\n")
            status, headers, out = 500, [("content-type", "application/json")], b'{"message":"Internal Server Error"}'
        headers.append(("apigw-requestid", request_id))
        self._send(status, headers, out)
        return status

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


def cmd_routes(args: argparse.Namespace) -> None:
    for route in sorted(load_routes(load_template(args.template)), key=lambda r: (r.path, r.method)):
        print(route.method, route.path, route.function, route.authorization, sep="\t")


def cmd_binaries(args: argparse.Namespace) -> None:
    template = load_template(args.template)
    for logical_id, resource in template.get("Resources", {}).items():
        binary = _binary(template, logical_id)
        if resource.get("Type") == "AWS::Serverless::Function" and binary:
            print(binary)


def cmd_gateway(args: argparse.Namespace) -> None:
    routes = load_routes(load_template(args.template))
    if not routes:
        sys.exit(f"{args.template}: no HttpApi events found")
    _Gateway.routes = routes
    _Gateway.lambda_url = args.lambda_url.rstrip("/")
    _Gateway.user_arn = args.user_arn
    _Gateway.invoke_timeout = args.invoke_timeout
    server = ThreadingHTTPServer((args.host, args.port), _Gateway)
    server.daemon_threads = True
    sys.stderr.write(f"local HTTP API on http://{args.host}:{args.port} -> {_Gateway.lambda_url}\n")
    for route in sorted(routes, key=lambda r: (r.path, r.method)):
        note = "" if route.authorization == "AWS_IAM" else " (no authorizer)"
        sys.stderr.write(f"  {route.key:55} -> {route.function}{note}\n")
    sys.stderr.flush()
    try:
        server.serve_forever()
    finally:
        server.server_close()


# --------------------------------------------------------------------------------------------
# IAM Identity Center's sso-admin API: ListInstances only


class _SsoAdmin(BaseHTTPRequestHandler):
    """sso-admin's AWS JSON 1.1 protocol (POST /, X-Amz-Target: SWBExternalService.<Operation>),
    for ListInstances: the console finds the account's Identity Store this way before a profile
    exists. moto has ListInstances, but its identity store ids break AWS's pattern d-[0-9a-f]{10},
    which the console rightly refuses; this answers with the store the demo directory lives in."""

    protocol_version = "HTTP/1.1"
    server_version = "local-sso-admin"
    identity_store_id = ""  # set in cmd_sso_admin
    created = 0

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        target = self.headers.get("x-amz-target", "-") if self.headers else "-"
        sys.stderr.write(f"{self.command} {self.path} {target} {code}\n")
        sys.stderr.flush()

    def _answer(self, status: int, doc: dict[str, Any], error_type: str | None = None) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("content-type", "application/x-amz-json-1.1")
        self.send_header("x-amzn-requestid", str(uuid.uuid4()))
        if error_type:
            self.send_header("x-amzn-errortype", error_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, error_type: str, message: str) -> None:
        self._answer(status, {"__type": error_type, "Message": message}, error_type)

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        target = self.headers.get("x-amz-target", "")
        service, _, operation = target.partition(".")
        if service != "SWBExternalService":
            self._error(400, "UnknownOperationException", f"unknown X-Amz-Target {target!r}")
            return
        if operation != "ListInstances":
            self._error(400, "UnknownOperationException", f"this stand-in answers ListInstances only, not {operation}")
            return
        try:
            request = json.loads(raw or b"{}")
            if not isinstance(request, dict):
                raise ValueError("not an object")
        except ValueError:
            self._error(400, "SerializationException", "the request body is not a JSON object")
            return
        max_results = request.get("MaxResults")
        if max_results is not None and (not isinstance(max_results, int) or not 1 <= max_results <= 100):
            self._error(400, "ValidationException", "MaxResults must be an integer from 1 to 100")
            return
        if request.get("NextToken"):
            # There is one page: a token this server never gave is invalid.
            self._error(400, "ValidationException", "invalid NextToken")
            return
        self._answer(
            200,
            {
                "Instances": [
                    {
                        "InstanceArn": "arn:aws:sso:::instance/ssoins-0000000000000000",
                        "IdentityStoreId": self.identity_store_id,
                        "OwnerAccountId": LOCAL_ACCOUNT_ID,
                        "Name": "local",
                        "Status": "ACTIVE",
                        "CreatedDate": self.created,
                    }
                ]
            },
        )

    def _not_json_rpc(self) -> None:
        self._error(404 if self.command == "GET" else 405, "UnknownOperationException", "POST / with X-Amz-Target")

    do_GET = do_PUT = do_PATCH = do_DELETE = _not_json_rpc


def cmd_sso_admin(args: argparse.Namespace) -> None:
    if not re.fullmatch(r"d-[0-9a-f]{10}", args.identity_store_id):
        sys.exit(f"--identity-store-id {args.identity_store_id!r} is not of AWS's form d-<10 hex digits>")
    _SsoAdmin.identity_store_id = args.identity_store_id
    _SsoAdmin.created = int(time.time())
    server = ThreadingHTTPServer((args.host, args.port), _SsoAdmin)
    server.daemon_threads = True
    sys.stderr.write(
        f"sso-admin stand-in on http://{args.host}:{args.port}: "
        f"ListInstances -> identity store {args.identity_store_id}\n"
    )
    sys.stderr.flush()
    try:
        server.serve_forever()
    finally:
        server.server_close()


# --------------------------------------------------------------------------------------------
# The stack's own bus: rules to functions


@dataclass(frozen=True)
class BusRule:
    name: str  # FunctionLogicalId + event name, as SAM names the rule's target
    function: str  # cargo-lambda binary name
    pattern: dict[str, Any]


def load_bus_rules(template: dict[str, Any]) -> list[BusRule]:
    """The functions' EventBridgeRule events on the stack's own bus (those with an EventBusName):
    the deferred work the stack sends itself (audits, their continuations, seat names)."""
    return [
        BusRule(f"{logical_id}{name}", binary, props["Pattern"])
        for logical_id, binary, name, kind, props in function_events(template)
        if kind == "EventBridgeRule" and props.get("EventBusName")
    ]


def function_events(template: dict[str, Any]) -> Iterator[tuple[str, str, str, str, dict[str, Any]]]:
    """Each event of each function the template builds: (logical id, binary, event name, event
    type, event properties)."""
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        binary = ((resource.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary")
        if not binary:
            continue
        for name, event in ((resource.get("Properties") or {}).get("Events") or {}).items():
            yield logical_id, binary, name, event.get("Type", ""), event.get("Properties") or {}


def cmd_activity_report(args: argparse.Namespace) -> None:
    """What Kiro and S3 do in AWS for the daily user activity report: write today's report for
    some demo users into the report bucket (moto S3), then deliver its `Object Created` envelope to
    ingest-activity, as the template's `UserActivityReport` rule does. Prints the import report."""
    directory = json.loads(Path(args.directory).read_text(encoding="utf-8"))
    s3 = _client("s3", args.endpoint)
    try:
        s3.create_bucket(Bucket=args.bucket)
    except Exception as err:  # noqa: BLE001 - already there on a second run
        if _error_code(err) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    lines = ["Date,UserId,Client_Type,Chat_Conversations,Credits_Used,Overage_Credits_Used,Total_Messages,Subscription_Tier"]
    for n, name in enumerate(args.users.split(",")):
        uid = directory["users"][name.strip()]
        lines.append(f"{today},{uid},KIRO_IDE,{2 + n},{12.5 * (n + 1)},0,{9 + 3 * n},PRO")
    key = f"kiro/AWSLogs/{LOCAL_ACCOUNT_ID}/KiroLogs/user_report/us-east-1/{today.replace('-', '/')}/00/KIRO_IDE_{LOCAL_ACCOUNT_ID}_user_report_{today.replace('-', '')}.csv"
    etag = s3.put_object(Bucket=args.bucket, Key=key, Body=("\n".join(lines) + "\n").encode())["ETag"].strip('"')
    envelope = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": LOCAL_ACCOUNT_ID,
        "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{args.bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": args.bucket},
            "object": {"key": key, "size": len("\n".join(lines)) + 1, "etag": etag, "sequencer": "00"},
            "request-id": "LOCAL",
            "requester": "q.amazonaws.com",
            "reason": "PutObject",
        },
    }
    url = f"{args.lambda_url.rstrip('/')}/2015-03-31/functions/ingest-activity/invocations"
    request = urllib.request.Request(
        url, data=json.dumps(envelope).encode(), method="POST", headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as resp:
        print(resp.read().decode("utf-8", "replace"))


def cmd_forward(args: argparse.Namespace) -> None:
    """What EventBridge does in AWS for the stack's bus: each rule of the template (its pattern,
    on the bus) delivers matching events to its function. moto matches the rule and puts the
    envelope in an SQS queue; this loop hands each one to the function through the Lambda invoke
    API of `cargo lambda watch`, and deletes it once the function succeeded (a failure is
    retried when the message becomes visible again, as EventBridge retries)."""
    template = load_template(args.template)
    bus = args.bus or parameter_default(template, "EventBusName")
    events, sqs = _client("events", args.endpoint), _client("sqs", args.endpoint)
    queues: list[tuple[BusRule, str]] = []
    for rule in load_bus_rules(template):
        queue = sqs.create_queue(QueueName=f"local-{rule.name}", Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name=rule.name, EventBusName=bus, EventPattern=json.dumps(rule.pattern))
        events.put_targets(Rule=rule.name, EventBusName=bus, Targets=[{"Id": rule.function, "Arn": arn}])
        queues.append((rule, queue))
        sys.stderr.write(f"bus {bus}: rule {rule.name} {json.dumps(rule.pattern)} -> {rule.function}\n")
    sys.stderr.flush()
    lambda_url = args.lambda_url.rstrip("/")
    while True:
        time.sleep(0.2)
        for rule, queue in queues:
            try:
                # No long poll: moto serves one request at a time (scripts/moto_server.py), so a
                # waiting receive would hold every function's AWS call for its second.
                received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            except Exception as err:  # noqa: BLE001 - the emulator hiccuped: say so, poll again
                sys.stderr.write(f"reading {queue} failed ({err}); polling again in 1 s\n")
                time.sleep(1)
                continue
            for message in received.get("Messages", []):
                envelope = json.loads(message["Body"])
                envelope.setdefault("account", LOCAL_ACCOUNT_ID)
                url = f"{lambda_url}/2015-03-31/functions/{rule.function}/invocations"
                request = urllib.request.Request(
                    url, data=json.dumps(envelope).encode(), method="POST", headers={"content-type": "application/json"}
                )
                what = f"{envelope.get('detail-type')} -> {rule.function}"
                try:
                    with urllib.request.urlopen(request, timeout=args.invoke_timeout) as resp:
                        answer = resp.read().decode("utf-8", "replace")
                    sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
                    sys.stderr.write(f"{what}: {answer[:300]}\n")
                except (urllib.error.URLError, OSError, ValueError) as err:
                    detail = err.read().decode("utf-8", "replace")[:300] if isinstance(err, urllib.error.HTTPError) else ""
                    sys.stderr.write(f"{what} failed ({err}) {detail}; retried in 30 s\n")
                sys.stderr.flush()


# --------------------------------------------------------------------------------------------
# The table's stream: event source mappings to functions


@dataclass(frozen=True)
class StreamSource:
    name: str  # FunctionLogicalId + event name
    function: str  # cargo-lambda binary name
    patterns: list[dict[str, Any]]  # FilterCriteria, parsed; empty: every record
    batch_size: int
    starting_position: str


def load_stream_sources(template: dict[str, Any]) -> list[StreamSource]:
    """The functions' `DynamoDB` events on the table's stream (publish-events')."""
    sources = []
    for logical_id, binary, name, kind, props in function_events(template):
        if kind != "DynamoDB":
            continue
        stream = props.get("Stream")
        if stream != {"Fn::GetAtt": ["Table", "StreamArn"]}:
            sys.exit(f"{logical_id}.{name}: only the stream of Resources.Table runs locally, not {stream}")
        filters = (props.get("FilterCriteria") or {}).get("Filters") or []
        sources.append(
            StreamSource(
                f"{logical_id}{name}",
                binary,
                [json.loads(f["Pattern"]) for f in filters],
                int(props.get("BatchSize", 100)),
                props.get("StartingPosition", "LATEST"),
            )
        )
    return sources


def filter_matches(pattern: dict[str, Any], record: Any) -> bool:
    """Lambda's event filtering (EventBridge's pattern syntax) for what the template uses: nested
    objects, lists of exact values and `{"prefix": ...}`. Anything else stops the poller: extend
    this, not bypass it."""
    for key, want in pattern.items():
        value = record.get(key) if isinstance(record, dict) else None
        if isinstance(want, dict):
            if not isinstance(value, dict) or not filter_matches(want, value):
                return False
        elif isinstance(want, list):
            def one(alt: Any) -> bool:
                if not isinstance(alt, dict):
                    return value == alt
                if list(alt) == ["prefix"] and isinstance(alt["prefix"], str):
                    return isinstance(value, str) and value.startswith(alt["prefix"])
                sys.exit(f"filter operator {alt} is not supported locally: extend filter_matches")

            if not any(one(alt) for alt in want):
                return False
        else:
            sys.exit(f"a filter pattern's values are objects or lists, not {want!r}")
    return True


def _lambda_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A GetRecords record as Lambda hands it over (times as epoch seconds, the stream's ARN)."""
    out = json.loads(json.dumps(record, default=lambda t: t.timestamp() if isinstance(t, datetime) else str(t)))
    out["eventSourceARN"] = stream_arn
    return out


def cmd_stream(args: argparse.Namespace) -> None:
    """What Lambda's event source mapping does in AWS for the table's stream: read it (moto
    implements DynamoDB Streams), keep the records the template's FilterCriteria lets through, hand
    them to the function through the Lambda invoke API of `cargo lambda watch`, at most BatchSize
    an invocation, and move on as its partial batch response says (from the first record it
    reports, when it reports one; after the whole batch otherwise). An invocation that fails is
    retried from the same record."""
    sources = load_stream_sources(load_template(args.template))
    if not sources:
        sys.stderr.write("the template declares no DynamoDB event source; nothing to do\n")
        sys.stderr.flush()
        while True:  # a service of `make dev`: stopping would stop the stack
            time.sleep(3600)
    ddb, streams = _client("dynamodb", args.endpoint), _client("dynamodbstreams", args.endpoint)
    stream_arn = ddb.describe_table(TableName=args.table)["Table"].get("LatestStreamArn")
    if not stream_arn:
        sys.exit(f"table {args.table} has no stream: create it from template.yaml (create-table)")
    shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]

    def read(after: str | None, position: str) -> list[dict[str, Any]]:
        # A fresh iterator each time: moto puts a table back whole when a transaction fails, and an
        # old iterator would go on reading a stream that is no longer the table's.
        if after is None:
            it = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard, ShardIteratorType=position)
        else:
            it = streams.get_shard_iterator(
                StreamArn=stream_arn, ShardId=shard, ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=after
            )
        return streams.get_records(ShardIterator=it["ShardIterator"], Limit=1000).get("Records", [])

    checkpoints: dict[str, str | None] = {}
    for source in sources:
        start = None
        if source.starting_position == "LATEST":
            existing = read(None, "TRIM_HORIZON")
            start = existing[-1]["dynamodb"]["SequenceNumber"] if existing else None
        checkpoints[source.name] = start
        sys.stderr.write(
            f"stream of {args.table}: {source.name} {json.dumps(source.patterns)} "
            f"batch {source.batch_size} -> {source.function}\n"
        )
    sys.stderr.flush()
    lambda_url = args.lambda_url.rstrip("/")
    while True:
        time.sleep(args.poll)
        for source in sources:
            after = checkpoints[source.name]
            try:
                records = read(after, "TRIM_HORIZON")
            except Exception as err:  # noqa: BLE001 - the emulator hiccuped: say so, poll again
                sys.stderr.write(f"reading the stream failed ({err}); polling again in 1 s\n")
                time.sleep(1)
                continue
            batch: list[dict[str, Any]] = []
            read_seqs: list[str] = []
            for record in records:
                if filter_matches_any(source.patterns, record):
                    if len(batch) == source.batch_size:
                        break
                    batch.append(_lambda_record(record, stream_arn))
                read_seqs.append(record["dynamodb"]["SequenceNumber"])
            if not batch:
                if read_seqs:
                    checkpoints[source.name] = read_seqs[-1]
                continue
            url = f"{lambda_url}/2015-03-31/functions/{source.function}/invocations"
            request = urllib.request.Request(
                url, data=json.dumps({"Records": batch}).encode(), method="POST", headers={"content-type": "application/json"}
            )
            what = f"{len(batch)} records -> {source.function}"
            try:
                with urllib.request.urlopen(request, timeout=args.invoke_timeout) as resp:
                    answer = json.loads(resp.read().decode("utf-8", "replace") or "{}")
            except (urllib.error.URLError, OSError, ValueError) as err:
                detail = err.read().decode("utf-8", "replace")[:300] if isinstance(err, urllib.error.HTTPError) else ""
                sys.stderr.write(f"{what} failed ({err}) {detail}; retried in 5 s\n")
                sys.stderr.flush()
                time.sleep(5)
                continue
            reported = {f.get("itemIdentifier") for f in (answer or {}).get("batchItemFailures") or []}
            first = next((i for i, seq in enumerate(read_seqs) if seq in reported), None)
            if first is None:
                checkpoints[source.name] = read_seqs[-1]
            elif first > 0:
                checkpoints[source.name] = read_seqs[first - 1]
            sys.stderr.write(f"{what}: {json.dumps(answer)[:300]}\n")
            sys.stderr.flush()


def filter_matches_any(patterns: list[dict[str, Any]], record: dict[str, Any]) -> bool:
    return not patterns or any(filter_matches(p, record) for p in patterns)


# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE, help="SAM template (default: %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("create-table", help="create the table from Resources.Table (idempotent)")
    p.add_argument("--endpoint", required=True, help="emulator URL, e.g. http://127.0.0.1:5000")
    p.add_argument("--name", required=True, help="table name")
    p.set_defaults(func=cmd_create_table)

    p = sub.add_parser("create-bus", help="create the custom event bus (idempotent)")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--name", help="bus name (default: the template's EventBusName default)")
    p.set_defaults(func=cmd_create_bus)

    p = sub.add_parser("seed-demo", help="seed a demo Identity Center directory (idempotent)")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--identity-store-id", default="d-1234567890")
    p.set_defaults(func=cmd_seed_demo)

    p = sub.add_parser("gateway", help="local API Gateway HTTP API in front of cargo lambda watch")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3000)
    p.add_argument("--lambda-url", default="http://127.0.0.1:9000", help="cargo lambda watch's invoke API")
    p.add_argument("--user-arn", default=DEFAULT_USER_ARN, help="caller recorded as authorizer.iam.userArn")
    p.add_argument(
        "--invoke-timeout",
        type=float,
        default=600.0,
        help="seconds to wait for a function; the first call may include compiling it",
    )
    p.set_defaults(func=cmd_gateway)

    p = sub.add_parser("sso-admin", help="sso-admin's ListInstances, answering with one Identity Center instance")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3002)
    p.add_argument("--identity-store-id", default="d-1234567890", help="the instance's IdentityStoreId")
    p.set_defaults(func=cmd_sso_admin)

    p = sub.add_parser("demo-users", help="print the demo directory's users (for the local OpenID Connect provider)")
    p.set_defaults(func=cmd_demo_users)

    p = sub.add_parser(
        "function-env",
        help="print NAME=VALUE for the functions' environment variables whose template value is a literal "
        "or a !Ref to a Parameter with a Default",
    )
    p.add_argument("names", nargs="*", help="only these variables (default: all that resolve)")
    p.set_defaults(func=cmd_function_env)

    p = sub.add_parser("activity-report", help="write today's activity report for demo users to S3 and deliver it to ingest-activity")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--lambda-url", required=True)
    p.add_argument("--directory", required=True, help="the demo-directory.json seed-demo wrote")
    p.add_argument("--bucket", default="kiro-local-reports")
    p.add_argument("--users", default="alice,bob", help="comma-separated demo user names")
    p.set_defaults(func=cmd_activity_report)

    p = sub.add_parser("forward", help="deliver the stack's bus events to their functions, as the template's rules do")
    p.add_argument("--endpoint", required=True, help="emulator URL, e.g. http://127.0.0.1:5000")
    p.add_argument("--bus", help="bus name (default: the template's EventBusName default)")
    p.add_argument("--lambda-url", default="http://127.0.0.1:9000", help="cargo lambda watch's invoke API")
    p.add_argument("--invoke-timeout", type=float, default=900.0, help="seconds to wait for a function")
    p.set_defaults(func=cmd_forward)

    p = sub.add_parser("stream", help="hand the table's stream to its functions, as the template's DynamoDB events do")
    p.add_argument("--endpoint", required=True, help="emulator URL, e.g. http://127.0.0.1:5000")
    p.add_argument("--table", required=True, help="table name")
    p.add_argument("--lambda-url", default="http://127.0.0.1:9000", help="cargo lambda watch's invoke API")
    p.add_argument("--poll", type=float, default=0.3, help="seconds between reads of the stream")
    p.add_argument("--invoke-timeout", type=float, default=900.0, help="seconds to wait for a function")
    p.set_defaults(func=cmd_stream)

    p = sub.add_parser("wait-for", help="wait until a URL answers (or, with --tcp, HOST:PORT accepts)")
    p.add_argument("--url", required=True)
    p.add_argument("--tcp", action="store_true", help="--url is HOST:PORT; wait until it accepts a connection")
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--below", type=int, help="only a status below this counts as an answer (e.g. 500)")
    p.add_argument("--request-timeout", type=float, default=2.0, help="seconds one request may take")
    p.add_argument("--pid", type=int, help="give up as soon as this process (the server) has exited")
    p.set_defaults(func=cmd_wait_for)

    p = sub.add_parser("routes", help="print the local HTTP API's routes: ROUTE_KEY BINARY AUTHORIZATION")
    p.set_defaults(func=cmd_routes)

    p = sub.add_parser("binaries", help="print the binaries of the template's functions, one a line")
    p.set_defaults(func=cmd_binaries)

    p = sub.add_parser("param", help="print a template Parameter's Default")
    p.add_argument("name", help="e.g. EventBusName")
    p.set_defaults(func=cmd_param)

    args = parser.parse_args(argv)
    try:
        args.func(args)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
