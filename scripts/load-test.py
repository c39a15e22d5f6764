#!/usr/bin/env python3
"""Load test of the local stack with oha (pinned, installed into .local/tools by `make load-test`).

1. GET /events for DURATION seconds, then POST /events for DURATION seconds (a real token from
   a fresh signup and login; every event carries this run's marker in its title).
2. Waits until every event the POSTs created (every 201) is in the read model, and reports how
   long that took after the load ended, and how many never arrived (lost).
3. The same number of raw DynamoDB calls straight at the emulator (GetItem for the GET side,
   PutItem for the POST side), with no function in between: the local limit.

Prints a table and writes it to .local/load-test.txt. Figures, not assertions: the exit code
is non-zero only if something was lost or a request failed.
"""

import json
import os
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OHA = os.path.join(ROOT, ".local/tools/bin/oha")
DURATION = int(os.environ.get("LOAD_SECONDS", "20"))
CONCURRENCY = int(os.environ.get("LOAD_CONCURRENCY", "8"))
ENDPOINT = os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
STACK = os.environ.get("STACK_NAME", "Evently")

outputs = json.load(open(os.path.join(ROOT, "infra/outputs.local.json")))[STACK]
API = os.environ.get("EVENTLY_API_URL") or f"{ENDPOINT}/_aws/execute-api/{outputs['ApiId']}"
API = API.rstrip("/")
RUN = f"load-{int(time.time())}"


def http(method, url, body=None, headers=None):
    request = urllib.request.Request(
        url, data=None if body is None else json.dumps(body).encode(), method=method,
        headers={"content-type": "application/json", **(headers or {})})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def dynamo(target, payload):
    """A DynamoDB JSON call to the emulator (which does not check signatures)."""
    return http("POST", ENDPOINT + "/", payload, {
        "content-type": "application/x-amz-json-1.0",
        "x-amz-target": f"DynamoDB_20120810.{target}",
        "authorization": "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/dynamodb/aws4_request, "
                         "SignedHeaders=host, Signature=0",
    })


def oha(url, *args):
    out = subprocess.run(
        [OHA, "-z", f"{DURATION}s", "-w", "-c", str(CONCURRENCY), "--no-tui", "--output-format", "json",
         *args, url],
        check=True, capture_output=True, text=True).stdout
    report = json.loads(out)
    statuses = {int(k): v for k, v in (report.get("statusCodeDistribution") or {}).items()}
    errors = sum((report.get("errorDistribution") or {}).values())
    percentiles = report.get("latencyPercentiles") or {}
    return {
        "rps": report["summary"]["requestsPerSec"],
        "p50": (percentiles.get("p50") or 0) * 1000,
        "p99": (percentiles.get("p99") or 0) * 1000,
        "statuses": statuses,
        "errors": errors,
    }


def count_in_read_model():
    """Projections of this run's events in the read model (a filtered scan)."""
    count, start = 0, None
    while True:
        payload = {
            "TableName": outputs["ReadModelTableName"],
            "FilterExpression": "begins_with(pk, :event) AND contains(title, :run)",
            "ExpressionAttributeValues": {":event": {"S": "EVENT#"}, ":run": {"S": RUN}},
            "Select": "COUNT",
            "ConsistentRead": True,
        }
        if start:
            payload["ExclusiveStartKey"] = start
        page = dynamo("Scan", payload)
        count += page.get("Count", 0)
        start = page.get("LastEvaluatedKey")
        if not start:
            return count


def main():
    email = f"{RUN}@example.com"
    http("POST", API + "/signup", {"email": email, "password": "load test passphrase", "display_name": "Load"})
    token = http("POST", API + "/login", {"email": email, "password": "load test passphrase"})["access_token"]
    body = json.dumps({
        "title": f"Load {RUN}", "starts_at": "2030-06-01T18:00:00Z", "ends_at": "2030-06-01T20:00:00Z",
        "venue": "Load hall",
    })

    get = oha(API + "/events?limit=20")
    post = oha(API + "/events", "-m", "POST", "-d", body,
               "-H", "content-type: application/json", "-H", f"authorization: Bearer {token}")
    load_ended = time.time()
    created = post["statuses"].get(201, 0)
    projected, waited = 0, 0.0
    deadline = load_ended + 120
    while time.time() < deadline:
        projected = count_in_read_model()
        if projected >= created:
            break
        time.sleep(0.5)
    waited = time.time() - load_ended

    item_key = {"pk": {"S": "EVENT#01AAAAAAAAAAAAAAAAAAAAAAAA"}, "sk": {"S": "EVENT"}}
    raw_get = oha(ENDPOINT + "/", "-m", "POST",
                  "-H", "content-type: application/x-amz-json-1.0",
                  "-H", "x-amz-target: DynamoDB_20120810.GetItem",
                  "-H", "authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0",
                  "-d", json.dumps({"TableName": outputs["ReadModelTableName"], "Key": item_key}))
    raw_put = oha(ENDPOINT + "/", "-m", "POST",
                  "-H", "content-type: application/x-amz-json-1.0",
                  "-H", "x-amz-target: DynamoDB_20120810.PutItem",
                  "-H", "authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0",
                  "-d", json.dumps({"TableName": outputs["IdempotencyTableName"],
                                    "Item": {"pk": {"S": f"load-test#{RUN}"}, "expires_at": {"N": "0"}}}))

    def bad(result, ok):
        return result["errors"] + sum(v for k, v in result["statuses"].items() if k not in ok)

    rows = [
        ("GET /events (API Gateway + events-api)", get, bad(get, {200})),
        ("POST /events (API Gateway + events-api)", post, bad(post, {201})),
        ("raw DynamoDB GetItem (emulator only)", raw_get, bad(raw_get, {200})),
        ("raw DynamoDB PutItem (emulator only)", raw_put, bad(raw_put, {200})),
    ]
    lines = [f"load test {time.strftime('%Y-%m-%d %H:%M')} UTC: {DURATION} s each, concurrency {CONCURRENCY}",
             f"{'what':<42} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"]
    for name, result, errors in rows:
        lines.append(f"{name:<42} {result['rps']:>8.1f} {result['p50']:>8.2f} {result['p99']:>8.2f} {errors:>7}")
    lost = max(created - projected, 0)
    lines.append(f"created {created} events; {projected} in the read model {waited:.1f} s after the load ended; lost {lost}")
    text = "\n".join(lines)
    print(text)
    os.makedirs(os.path.join(ROOT, ".local"), exist_ok=True)
    open(os.path.join(ROOT, ".local/load-test.txt"), "w").write(text + "\n")
    return 1 if lost or rows[0][2] or rows[1][2] else 0


if __name__ == "__main__":
    sys.exit(main())
