#!/usr/bin/env python3
"""The DynamoDB front door measured with `rewind-loadgen run --dynamodb`: PutItem and GetItem
at their closed-loop peak, then open loop at half that rate, and Query of one whole partition
(100 items by default), on a release server with `--fsync always`.

Steps, on a fresh data directory:
  1. fill: PutItem of random keys until (nearly) every item of --partitions partitions of
     --partition-items items exists (10 requests per item: 1 - e^-10 of them exist);
  2. PutItem, closed loop, --connections connections: the peak rate;
  3. GetItem, closed loop: the peak rate;
  4. PutItem and GetItem, open loop at half of each peak (PutItem at a quarter too): the
     latencies there, each followed by the same load as SET/GET over RESP to tell the
     disk's part from the HTTP front door's;
  5. Query of one partition, open loop at --query-rate (low, so the latency is the server's
     time plus the loopback round trip), and closed loop for its peak.
Prints a table; --json FILE writes every run's figures.

    python3 loadgen/scripts/dynamodb_bench.py [--seconds 10] [--connections 32]

Needs release builds (`cargo build --release`): target/release/rewind and rewind-loadgen.
"""
import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
import socket

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listening on {port} after {seconds} s")


def loadgen(args, endpoint, extra, label, resp_port=None):
    """One run; with resp_port, the same load as SET/GET over RESP to the default table."""
    out_json = tempfile.mktemp(suffix=".json")
    target = (["--addr", f"127.0.0.1:{resp_port}"] if resp_port else
              ["--dynamodb", endpoint, "--table", "bench", "--partition-items", str(args.partition_items)])
    cmd = [os.path.join(ROOT, "target/release/rewind-loadgen"), "run", *target,
           "--keys", str(args.partitions * args.partition_items), "--json", out_json, *extra]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise SystemExit(f"{label}: rewind-loadgen failed:\n{p.stdout}\n{p.stderr}")
    doc = json.load(open(out_json))
    os.unlink(out_json)
    stats = doc["ALL STATS"]
    part = ({"SET": "Sets", "GET": "Gets"} if resp_port else
            {"PutItem": "Sets", "GetItem": "Gets", "Query": "Queries"})
    row = {"label": label, "errors": stats["Errors"]}
    for op, key in part.items():
        s = stats.get(key)
        if s and s["Count"]:
            row[op] = {"ops_per_s": s["Ops/sec"], "p50_ms": s["Percentile Latencies"]["p50.00"],
                       "p99_ms": s["Percentile Latencies"]["p99.00"],
                       "p999_ms": s["Percentile Latencies"]["p99.90"]}
    print(f"  {label}: " + ", ".join(
        f"{op} {r['ops_per_s']:,.0f}/s p50 {r['p50_ms']:.3f} ms p99 {r['p99_ms']:.3f} ms"
        for op, r in row.items() if op in part) + f", errors {row['errors'] or 'none'}", flush=True)
    return row


def query_count(endpoint, partition):
    """Items a Query of one partition returns (the fill's coverage, checked)."""
    import urllib.request
    body = json.dumps({"TableName": "bench", "KeyConditionExpression": "pk = :p", "Select": "COUNT",
                       "ExpressionAttributeValues": {":p": {"S": f"p{partition}"}}}).encode()
    req = urllib.request.Request(endpoint, data=body, method="POST", headers={
        "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.Query"})
    return json.load(urllib.request.urlopen(req, timeout=30))["Count"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--partitions", type=int, default=200)
    ap.add_argument("--partition-items", type=int, default=100)
    ap.add_argument("--query-rate", type=float, default=200)
    ap.add_argument("--json")
    args = ap.parse_args()
    data = tempfile.mkdtemp(prefix="rewind-dynamo-bench-")
    port, dport = free_port(), free_port()
    server = subprocess.Popen([os.path.join(ROOT, "target/release/rewind"), "serve", "--data-dir", data,
                               "--listen", f"127.0.0.1:{port}", "--dynamodb-listen", f"127.0.0.1:{dport}",
                               "--fsync", "always"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{dport}"
    rows = []
    try:
        wait_port(dport)
        c = ["--connections", str(args.connections), "--threads", "1"]
        secs = ["--duration", f"{args.seconds}s", "--warmup", "1s"]
        items = args.partitions * args.partition_items
        rows.append(loadgen(args, endpoint, [*c, "--ratio", "1:0", "--requests", str(10 * items),
                                             "--duration", "600s"], "fill"))
        counts = [query_count(endpoint, p) for p in range(args.partitions)]
        print(f"  partitions hold {min(counts)} to {max(counts)} items (mean {sum(counts) / len(counts):.2f})")
        rows.append({"label": "partition sizes", "min": min(counts), "max": max(counts)})
        put = loadgen(args, endpoint, [*c, *secs, "--ratio", "1:0"], "PutItem closed loop")
        get = loadgen(args, endpoint, [*c, *secs, "--ratio", "0:1"], "GetItem closed loop")
        rows += [put, get]
        half_put = put["PutItem"]["ops_per_s"] / 2
        half_get = get["GetItem"]["ops_per_s"] / 2
        # Each open-loop DynamoDB run is followed by the same load over RESP, so that what
        # the disk and the machine do is told apart from what the HTTP front door adds.
        for rate in (half_put, half_put / 2):
            rows.append(loadgen(args, endpoint, [*c, *secs, "--ratio", "1:0", "--rate", str(rate)],
                                f"PutItem open loop at {rate:,.0f}/s"))
            rows.append(loadgen(args, endpoint, [*c, *secs, "--ratio", "1:0", "--rate", str(rate)],
                                f"RESP SET open loop at {rate:,.0f}/s", resp_port=port))
        rows.append(loadgen(args, endpoint, [*c, *secs, "--ratio", "0:1", "--rate", str(half_get)],
                            f"GetItem open loop at {half_get:,.0f}/s"))
        rows.append(loadgen(args, endpoint, [*c, *secs, "--ratio", "0:1", "--rate", str(half_get)],
                            f"RESP GET open loop at {half_get:,.0f}/s", resp_port=port))
        rows.append(loadgen(args, endpoint, [*c, *secs, "--query-ratio", "1", "--rate", str(args.query_rate)],
                            f"Query of {args.partition_items} items, open loop at {args.query_rate:,.0f}/s"))
        rows.append(loadgen(args, endpoint, [*c, *secs, "--query-ratio", "1"],
                            f"Query of {args.partition_items} items, closed loop"))
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(data, ignore_errors=True)
    if args.json:
        json.dump(rows, open(args.json, "w"), indent=2)


if __name__ == "__main__":
    main()
