#!/usr/bin/env python3
"""History questions without a restore (issue 15): how long they take on a loaded table.
Not a test: a benchmark, run on one machine in one invocation.

1. Loads --writes SETs of 100 bytes over --keys keys (rewind-loadgen, pipeline 16) into a
   PITR table on a fresh server (2 shards, 64 MiB segments, checkpoints as configured),
   then waits for the maintenance pass to index the sealed segments and checkpoints.
2. PITR.GET key AT t and PITR.HISTORY key (COUNT 100) for random keys and random moments of
   the load, one client, --queries each: p50 / p99 / max. The first query of each kind
   after a restart is timed apart (cold: key indexes loaded from disk).
3. TABLE.DIGEST of the table.
4. A steady --rate of SETs for --diff-seconds (rewind-loadgen open loop), then PITR.DIFF over
   that minute (COUNT 1000).

  python3 loadgen/scripts/history_bench.py [--writes 10000000] [--keys 1000000]
"""

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench.servers import free_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Resp:
    """A minimal RESP2 client: enough for the commands timed here."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.f = self.s.makefile("rb")

    def cmd(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.s.sendall(b"".join(out))
        return self.read()

    def read(self):
        line = self.f.readline()
        t, rest = line[:1], line[1:-2]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)[:-2]
            return data
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise RuntimeError(f"unexpected reply {line!r}")


def start(binary, data, extra=()):
    port = free_port()
    p = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data,
                          "--shards", "2", *extra],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while True:
        try:
            c = Resp(port)
            c.cmd("PING")
            return p, port, c
        except OSError:
            if time.time() > deadline or p.poll() is not None:
                sys.exit("the server did not start")
            time.sleep(0.2)


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))]


def timed(c, *args):
    t = time.perf_counter()
    r = c.cmd(*args)
    return (time.perf_counter() - t) * 1000, r


def report(name, ms):
    print(f"| {name} | {len(ms)} | {statistics.median(ms):.2f} | {pct(ms, 0.99):.2f} | {max(ms):.2f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/rewind"))
    ap.add_argument("--loadgen", default=os.path.join(ROOT, "target/release/rewind-loadgen"))
    ap.add_argument("--writes", type=int, default=10_000_000)
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--rate", type=int, default=50_000)
    ap.add_argument("--diff-seconds", type=int, default=60)
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    base = tempfile.mkdtemp(prefix="rewind-history-", dir=args.dir)
    data = os.path.join(base, "data")
    flags = ["--maintenance-secs", "5", "--checkpoint-mib", "256"]
    try:
        p, port, c = start(args.bin, data, flags)
        c.cmd("PITR.ENABLE", "default")
        t0 = int(time.time() * 1e6)
        t = time.time()
        subprocess.run([args.loadgen, "run", "--addr", f"127.0.0.1:{port}", "--ratio", "1:0",
                        "--keys", str(args.keys), "--requests", str(args.writes), "--pipeline", "16",
                        "--connections", "50", "--duration", "1h", "--table", "default"],
                       check=True, stdout=subprocess.DEVNULL)
        t1 = int(time.time() * 1e6)
        print(f"loaded {args.writes:,} writes over {args.keys:,} keys in {time.time() - t:.1f} s")
        # Let maintenance index the sealed segments and the checkpoints.
        time.sleep(15)
        p.terminate()
        p.wait()
        files = [f for _, _, fs in os.walk(data) for f in fs]
        print(f"on disk: {sum(f.endswith('.seg') for f in files)} segments, "
              f"{sum(f.endswith('.ckp') for f in files)} checkpoints, "
              f"{sum(f.endswith('.kix') for f in files)} key indexes")
        p, port, c = start(args.bin, data, flags)
        rng = random.Random(7)
        key = lambda: b"key:%012d" % rng.randrange(args.keys)  # noqa: E731
        moment = lambda: "%.6f" % (rng.randrange(t0, t1) / 1e6)  # noqa: E731
        print("\n| question | queries | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|")
        cold_get, _ = timed(c, "PITR.GET", "default", key(), "AT", moment())
        cold_hist, _ = timed(c, "PITR.HISTORY", "default", key(), "COUNT", "100")
        get_ms = [timed(c, "PITR.GET", "default", key(), "AT", moment())[0] for _ in range(args.queries)]
        hist = [timed(c, "PITR.HISTORY", "default", key(), "COUNT", "100") for _ in range(args.queries)]
        report("PITR.GET key AT t (first after restart)", [cold_get])
        report("PITR.GET key AT t", get_ms)
        report("PITR.HISTORY key COUNT 100 (first after restart)", [cold_hist])
        report("PITR.HISTORY key COUNT 100", [m for m, _ in hist])
        print(f"\nwrites per key listed by PITR.HISTORY: mean {statistics.mean(len(r) for _, r in hist):.1f}")
        ms, r = timed(c, "TABLE.DIGEST", "default")
        print(f"TABLE.DIGEST: {ms:.1f} ms ({r[3]:,} keys)")
        # A minute of steady writes, then its diff.
        d0 = int(time.time() * 1e6)
        subprocess.run([args.loadgen, "run", "--addr", f"127.0.0.1:{port}", "--ratio", "1:0",
                        "--keys", str(args.keys), "--rate", str(args.rate), "--connections", "50",
                        "--duration", f"{args.diff_seconds}s", "--table", "default", "--seed", "9"],
                       check=True, stdout=subprocess.DEVNULL)
        d1 = int(time.time() * 1e6)
        info = c.cmd("INFO", "persistence").decode()
        ms, r = timed(c, "PITR.DIFF", "default", "FROM", "%.6f" % (d0 / 1e6), "TO", "%.6f" % (d1 / 1e6),
                      "COUNT", "1000")
        print(f"PITR.DIFF over {args.diff_seconds} s of --rate {args.rate} SETs: {ms:.0f} ms, "
              f"{len(r)} keys returned (COUNT 1000)")
        ms2, r2 = timed(c, "PITR.DIFF", "default", "FROM", "%.6f" % (d0 / 1e6), "TO", "%.6f" % (d1 / 1e6),
                        "COUNT", "1000", "AFTER", r[-1][0])
        print(f"  the next page (AFTER its last key): {ms2:.0f} ms, {len(r2)} keys")
        p.terminate()
        p.wait()
        _ = info
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
