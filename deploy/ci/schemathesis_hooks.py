"""Schemathesis hooks for deploy/ci/schemathesis.sh.

A few data rules depend on the node, not on the shape of a request: a
posting's `audience` must be an office known here, `valid_until` must not be
before today, and a phone number must be a mainland number (a rule richer
than a pattern says well), and a placement needs a worker and a posting
that exist (the script creates one of each and passes their ids in
JOBMESH_ST_WORKER and JOBMESH_ST_POSTING). Generated values that are valid by the schema are
swapped for ones this node accepts, so that `positive_data_acceptance` keeps
checking every other field; values that break the schema are left alone, so
that `negative_data_rejection` still sees them refused.
"""
import datetime
import json
import os
import re

import schemathesis

_spec = None


def _schemas():
    global _spec
    if _spec is None:
        with open("deploy/openapi.json") as f:
            _spec = json.load(f)["components"]["schemas"]
    return _spec


def _matches(schema_name, prop, value):
    pattern = _schemas()[schema_name]["properties"][prop].get("pattern")
    return isinstance(value, str) and (pattern is None or re.search(pattern, value) is not None)


def _is_date(value):
    try:
        datetime.date.fromisoformat(value)
        return re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) is not None
    except (TypeError, ValueError):
        return False


def _feasible(op, body):
    if op is None or not isinstance(body, dict):
        return body
    key = (op.method.upper(), op.path)
    body = dict(body)
    if key == ("POST", "/v1/postings") and _matches("PostingCreate", "audience", body.get("audience")):
        body["audience"] = "gz"  # the node's own id: always known there
    if key in (("POST", "/v1/postings"), ("PATCH", "/v1/postings/{id}")) and _is_date(body.get("valid_until")):
        body["valid_until"] = (datetime.date.today() + datetime.timedelta(days=30)).isoformat()
    if key == ("POST", "/v1/placements"):
        for field, schema, env in (("worker_id", "WorkerId", "JOBMESH_ST_WORKER"),
                                   ("posting_id", "PostingId", "JOBMESH_ST_POSTING")):
            value = body.get(field)
            if os.environ.get(env) and isinstance(value, str) and re.search(_schemas()[schema]["pattern"], value):
                body[field] = os.environ[env]
    if key == ("POST", "/v1/workers"):
        phone = body.get("phone")
        if _matches("WorkerCreate", "phone", phone) and phone.strip():
            body["phone"] = "13800138000"
    return body


@schemathesis.hook
def map_body(context, body):
    """Generated bodies of the fuzzing and stateful phases."""
    return _feasible(context.operation, body)


@schemathesis.hook
def map_case(context, case):
    """Cases of the coverage phase, which do not pass through `map_body`."""
    case.body = _feasible(context.operation, case.body)
    return case


@schemathesis.deserializer("application/octet-stream")
def backup_file(ctx, response):
    """`GET /v1/backup`: a backup file starts with its magic and a manifest;
    anything else is returned as a number, which the schema (a string)
    refuses."""
    body = response.content
    if body[:8] != b"JMBACKUP" or len(body) < 12:
        return len(body)
    length = int.from_bytes(body[8:12], "big")
    try:
        manifest = json.loads(body[12 : 12 + length])
    except ValueError:
        return len(body)
    return manifest.get("node_id", "") if isinstance(manifest, dict) else len(body)
