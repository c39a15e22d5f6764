#!/usr/bin/env python3
"""Dollars per one million EventCreated, fully processed (`make cost-model`).

One EventCreated is: POST /events through API Gateway, events-api's outbox transaction, the
outbox relay's publish to SNS, fan-out to four SQS queues, and the read-model-updater,
search-index, analytics and notifications consumers (EventCreated does not reach welcome-email).

Inputs, all measured in this repository:
  * the AWS calls each step makes and their request bodies: bench/warm/recorded/*.json
    (recorded from the real handlers against the local stack, `make record-warm`);
  * each step's CPU time: criterion's estimates from `make bench-warm`
    (target/criterion/warm/<scenario>/new/estimates.json), scaled to the memory size's CPU
    share (Lambda gives a full vCPU at 1 769 MB and proportionally less below);
  * log bytes per invocation: --log-bytes (default 1 685, measured 2026-11-29 over 167 local
    invocations of the relay and four consumers after a 3-second `make load-test`,
    START/END/REPORT included; `--measure-logs` re-measures on the emulator).

Assumed, and printed: the latency of one AWS call from inside the region (--call-ms, default
4 ms: the local emulator's measured p50 for a raw DynamoDB call was 3.9-4.2 ms, the same order as
DynamoDB's typical in-region latency), list prices for us-east-1 (PRICES below, checked
2026-11-28 against the public pricing pages as we know them; check before relying), items
under 1 KB unless their JSON says otherwise, and one message per consumer invocation (the
worst case; batching at load divides the per-invocation lines).
"""

import argparse
import base64
import glob
import json
import math
import os
import sys
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PRICES = {
    "api_gateway_http_request": 1.00 / 1e6,  # HTTP API, first 300 M a month
    "lambda_request": 0.20 / 1e6,
    "lambda_arm_gb_second": 0.0000133334,  # arm64, first 7.5 B GB-s a month
    "dynamodb_write_unit": 0.625 / 1e6,  # on-demand
    "dynamodb_read_unit": 0.125 / 1e6,
    "sns_publish": 0.50 / 1e6,  # per 64 KB chunk; delivery to SQS is free
    "sqs_request": 0.40 / 1e6,  # standard queue, per 64 KB chunk
    "ses_mail": 0.10 / 1e3,
    "logs_ingested_gb": 0.50,
}

FULL_VCPU_MB = 1769

# step: (recording, memory MB as configured in infra/lib, invocations per EventCreated)
STEPS = [
    ("events-api POST /events", "events-api-post-events", 256),
    ("outbox-relay", "outbox-relay-outbox-insert", 128),
    ("read-model-updater", "read-model-updater-event-created", 128),
    ("search-index", "search-index-event-created", 128),
    ("analytics", "analytics-event-created", 128),
    ("notifications (1 follower)", "notifications-event-created", 128),
]
QUEUES = 4  # read-model-updater, search-index, analytics, notifications


def value_size(value):
    """Bytes DynamoDB bills for one attribute value in its JSON wire form: strings by their
    UTF-8 length, binaries by their decoded length (not their base64), numbers by about one
    byte per two digits, documents by their members plus 3 bytes."""
    (kind, inner), = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "B":
        return len(base64.b64decode(inner))
    if kind == "N":
        return (len(inner.lstrip("-").replace(".", "")) + 1) // 2 + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(value_size({kind[0]: member}) for member in inner)
    if kind == "L":
        return 3 + sum(1 + value_size(member) for member in inner)
    if kind == "M":
        return 3 + sum(1 + len(name.encode()) + value_size(v) for name, v in inner.items())
    raise ValueError(f"attribute type {kind}")


def item_size(item):
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def item_units(item, unit_bytes):
    return max(1, math.ceil(item_size(item) / unit_bytes))


def gsi_writes(item):
    # The `upcoming` index holds items with list_pk; `by_user` items with user_pk.
    text = json.dumps(item)
    return ('"list_pk"' in text) + ('"user_pk"' in text)


def dynamodb_units(call):
    """(write units, read units) of one recorded DynamoDB call."""
    op = call["operation"].rsplit(".", 1)[-1]
    body = json.loads(call["request_body"] or "{}")
    response = json.loads(call["response_body"] or "{}")
    if op == "PutItem":
        return item_units(body["Item"], 1024) + gsi_writes(body["Item"]), 0
    if op in ("UpdateItem", "DeleteItem"):
        return 1 + gsi_writes(body), 0
    if op == "TransactWriteItems":
        writes = 0
        for entry in body["TransactItems"]:
            (kind, detail), = entry.items()
            if kind == "ConditionCheck":
                continue
            # An Update's resulting item is not in the request: its key stands in (at least
            # one unit either way).
            item = detail.get("Item", detail.get("Key", {}))
            writes += 2 * (item_units(item, 1024) + gsi_writes(detail))
        return writes, 0
    if op == "BatchWriteItem":
        writes = 0
        for requests in body["RequestItems"].values():
            for request in requests:
                item = request.get("PutRequest", {}).get(
                    "Item", request.get("DeleteRequest", {}).get("Key", {})
                )
                writes += item_units(item, 1024) + gsi_writes(item)
        return writes, 0
    if op == "GetItem":
        size = item_size(response.get("Item", {}))
        factor = 1 if body.get("ConsistentRead") else 0.5
        return 0, factor * max(1, math.ceil(size / 4096))
    if op in ("Query", "Scan"):
        size = sum(item_size(item) for item in response.get("Items", []))
        factor = 1 if body.get("ConsistentRead") else 0.5
        return 0, factor * max(1, math.ceil(size / 4096))
    if op == "BatchGetItem":
        # Each key is billed as its own GetItem (a missing item still costs one unit).
        units = 0
        for table, keys in body["RequestItems"].items():
            factor = 1 if keys.get("ConsistentRead") else 0.5
            found = response.get("Responses", {}).get(table, [])
            sizes = [item_size(item) for item in found]
            sizes += [0] * (len(keys["Keys"]) - len(found))
            units += sum(factor * max(1, math.ceil(size / 4096)) for size in sizes)
        return 0, units
    if op == "TransactGetItems":
        return 0, 2 * len(body["TransactItems"])
    return 0, 0


def cpu_ms(scenario):
    path = os.path.join(ROOT, "target", "criterion", "warm", scenario, "new", "estimates.json")
    try:
        with open(path) as f:
            return json.load(f)["mean"]["point_estimate"] / 1e6
    except OSError:
        return None


def measure_log_bytes(endpoint, stack):
    """Mean bytes per invocation over the local stack's consumer and relay log groups."""
    total, invocations = 0, 0
    for function in ["outbox-relay", "read-model-updater", "search-index", "analytics",
                     "notifications"]:
        request = urllib.request.Request(
            endpoint,
            data=json.dumps({"logGroupName": f"/aws/lambda/{stack}-{function}",
                             "limit": 10000}).encode(),
            headers={
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": "Logs_20140328.FilterLogEvents",
                "Authorization": "AWS4-HMAC-SHA256 Credential=test/20261128/us-east-1/logs/"
                                 "aws4_request, SignedHeaders=host, Signature=local",
            },
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            events = json.load(response)["events"]
        total += sum(len(e["message"]) + 1 for e in events)
        invocations += sum(1 for e in events if e["message"].startswith("START"))
    return total / max(1, invocations), invocations


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--call-ms", type=float, default=4.0)
    parser.add_argument("--log-bytes", type=float, default=1685.0)
    parser.add_argument("--measure-logs", action="store_true")
    parser.add_argument("--followers", type=int, default=1)
    args = parser.parse_args()

    log_bytes = args.log_bytes
    if args.measure_logs:
        log_bytes, n = measure_log_bytes(
            os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
            os.environ.get("STACK_NAME", "Evently"))
        print(f"log bytes per invocation, measured over {n} local invocations: {log_bytes:.0f}")

    lines = []  # (what, dollars per event)
    lines.append(("API Gateway HTTP API request", PRICES["api_gateway_http_request"]))
    total_wru = total_rru = 0.0
    gb_seconds = 0.0
    invocations = 0
    print(f"{'step':<28} {'calls':>5} {'CPU ms':>7} {'MB':>5} {'billed ms':>9} {'WRU':>5} {'RRU':>5}")
    for step, scenario, memory_mb in STEPS:
        with open(os.path.join(ROOT, "bench", "warm", "recorded", f"{scenario}.json")) as f:
            calls = json.load(f)["calls"]
        wru = rru = 0.0
        for call in calls:
            if call["operation"].startswith("DynamoDB_"):
                w, r = dynamodb_units(call)
                wru, rru = wru + w, rru + r
        cpu = cpu_ms(scenario)
        if cpu is None:
            sys.exit(f"no criterion estimate for {scenario}: run `make bench-warm` first")
        scaled_cpu = cpu * max(1.0, FULL_VCPU_MB / memory_mb)
        billed = math.ceil(scaled_cpu + len(calls) * args.call_ms)
        gb_seconds += memory_mb / 1024 * billed / 1000
        total_wru, total_rru = total_wru + wru, total_rru + rru
        invocations += 1
        print(f"{step:<28} {len(calls):>5} {cpu:>7.3f} {memory_mb:>5} {billed:>9} {wru:>5.1f} {rru:>5.1f}")

    lines.append((f"Lambda requests ({invocations} invocations)",
                  invocations * PRICES["lambda_request"]))
    lines.append((f"Lambda arm64 compute ({gb_seconds * 1000:.1f} GB-ms)",
                  gb_seconds * PRICES["lambda_arm_gb_second"]))
    lines.append((f"DynamoDB on-demand writes ({total_wru:.0f} WRU)",
                  total_wru * PRICES["dynamodb_write_unit"]))
    lines.append((f"DynamoDB on-demand reads ({total_rru:.1f} RRU)",
                  total_rru * PRICES["dynamodb_read_unit"]))
    lines.append(("SNS publish (1; SQS delivery free)", PRICES["sns_publish"]))
    lines.append((f"SQS ({QUEUES} queues x send, receive, delete)",
                  QUEUES * 3 * PRICES["sqs_request"]))
    lines.append((f"SES ({args.followers} follower mail)", args.followers * PRICES["ses_mail"]))
    lines.append((f"CloudWatch Logs ({invocations} x {log_bytes:.0f} B)",
                  invocations * log_bytes / 1e9 * PRICES["logs_ingested_gb"]))

    print()
    print(f"per one million EventCreated (us-east-1 list prices, {args.call_ms:g} ms per AWS call)")
    total = 0.0
    for what, dollars in lines:
        total += dollars * 1e6
        print(f"  {what:<48} ${dollars * 1e6:>9.2f}")
    print(f"  {'total':<48} ${total:>9.2f}")
    without_mail = total - args.followers * PRICES["ses_mail"] * 1e6
    print(f"  {'total without mail':<48} ${without_mail:>9.2f}")


if __name__ == "__main__":
    main()
