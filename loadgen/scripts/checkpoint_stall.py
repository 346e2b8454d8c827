#!/usr/bin/env python3
"""GET and SET tail latency while a large table checkpoints, against the same load with no
checkpoint (issue 12, item 3). Not a test: a benchmark, quoted as a ratio of runs side by side.

For each rewind binary given (--bin, repeatable) and each mode (no checkpoint; a checkpoint
every second), it starts a fresh server on 127.0.0.1, loads --keys keys of 100 bytes, then runs
rewind-loadgen open loop (--rate requests/s, 1 SET : 10 GET, 50 connections) for --seconds and
reports p50/p99/p99.9/max per command from its JSON. With --checkpoint-secs 1 and
--maintenance-secs 1 the maintenance thread checkpoints every shard whenever a second has
passed and anything was written, so checkpoints run back to back through the run.

  python3 loadgen/scripts/checkpoint_stall.py --bin target/release/rewind \\
      --loadgen target/release/rewind-loadgen
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench.servers import free_port  # noqa: E402


def start(binary, data, port, checkpoint):
    args = [binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data,
            "--shards", "2", "--maintenance-secs", "1"]
    if checkpoint:
        args += ["--checkpoint-secs", "1"]
    else:
        args += ["--checkpoint-secs", "86400", "--checkpoint-mib", "1000000"]
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in p.stderr:
        if "ready to accept connections" in line:
            break
    else:
        sys.exit(f"{binary} did not start")
    return p


def loadgen(lg, port, extra, out=None):
    cmd = [lg, "run", "--addr", f"127.0.0.1:{port}"] + extra
    if out:
        cmd += ["--json", out]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def percentiles(path):
    doc = json.load(open(path))
    res = {}
    for name, cmd in (("SET", "Sets"), ("GET", "Gets")):
        d = doc["ALL STATS"][cmd]
        pct = d.get("Percentile Latencies", {})
        res[name] = {k: pct.get(k) for k in ("p50.00", "p99.00", "p99.90")}
        res[name]["max"] = d.get("Max Latency")
        res[name]["ops"] = d.get("Count")
    return res


def checkpoint_names(data):
    names = set()
    for root, _, files in os.walk(data):
        names.update(os.path.join(root, f) for f in files if f.endswith(".ckp"))
    return names


class Watcher(threading.Thread):
    """Collects every checkpoint file seen while the run goes on (retention deletes old ones)."""

    def __init__(self, data):
        super().__init__(daemon=True)
        self.data, self.seen, self.stop = data, set(), threading.Event()

    def run(self):
        while not self.stop.wait(0.25):
            self.seen |= checkpoint_names(self.data)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", action="append", required=True)
    ap.add_argument("--loadgen", required=True)
    ap.add_argument("--keys", type=int, default=2_000_000)
    ap.add_argument("--rate", type=int, default=20_000)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=1)
    a = ap.parse_args()
    rows = []
    runs = [(b, c) for _ in range(a.rounds) for c in (False, True) for b in a.bin]
    for binary, checkpoint in runs:
        if True:
            data = tempfile.mkdtemp(prefix="ckpstall-")
            port = free_port()
            p = start(binary, data, port, checkpoint)
            try:
                loadgen(a.loadgen, port, ["--connections", "1", "--pipeline", "256",
                                          "--ratio", "1:0", "--key-dist", "sequential",
                                          "--keys", str(a.keys), "--requests", str(a.keys),
                                          "--duration", "600s"])
                out = os.path.join(data, "run.json")
                before = checkpoint_names(data)
                w = Watcher(data)
                w.start()
                loadgen(a.loadgen, port, ["--connections", "50", "--ratio", "1:10",
                                          "--keys", str(a.keys), "--rate", str(a.rate),
                                          "--duration", f"{a.seconds}s", "--warmup", "2s"], out)
                w.stop.set()
                w.join()
                made = len((w.seen | checkpoint_names(data)) - before)
                r = percentiles(out)
            finally:
                p.terminate()
                p.wait()
                shutil.rmtree(data, ignore_errors=True)
            rows.append((binary, checkpoint, made, r))
            print(f"{binary} checkpoint={'yes' if checkpoint else 'no'} checkpoint files during run: {made}", flush=True)
            for c in ("GET", "SET"):
                print(f"  {c}: {r[c]}", flush=True)
    print()
    print("| binary | checkpoints | cmd | p50 ms | p99 ms | p99.9 ms | max ms |")
    print("|---|---|---|---:|---:|---:|---:|")
    for binary, checkpoint, made, r in rows:
        for c in ("GET", "SET"):
            x = r[c]
            print(f"| {binary} | {'every 1 s (' + str(made) + ' files)' if checkpoint else 'none'} | {c} | "
                  f"{x['p50.00']} | {x['p99.00']} | {x['p99.90']} | {x['max']} |")


if __name__ == "__main__":
    main()
