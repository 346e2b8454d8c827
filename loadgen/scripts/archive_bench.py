#!/usr/bin/env python3
"""The archive's costs (issue 13), side by side on loopback against s3s-fs. Not a test: a
benchmark, quoted as ratios of runs in one invocation.

1. SET -P 16 with --fsync always, with and without --archive (redis-benchmark, rounds
   alternating which goes first): throughput ratio.
2. A steady --rate of SETs (rewind-loadgen open loop) with --archive: PUTs per hour from
   INFO, and the recovery point (archive_lag_seconds, sampled every 200 ms).
3. --writes SETs loaded with --archive, then the same table restored locally (rewind restore
   --data-dir) and from the archive alone (rewind restore --archive into a new directory):
   time ratio.

  python3 loadgen/scripts/archive_bench.py --bin target/release/rewind \\
      --loadgen target/release/rewind-loadgen [--writes 10000000] [--rounds 3]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench.servers import free_port  # noqa: E402


def s3s_fs():
    for p in (shutil.which("s3s-fs"), os.path.expanduser("~/.cargo/bin/s3s-fs")):
        if p and os.path.exists(p):
            return p
    sys.exit("s3s-fs is missing: cargo install s3s-fs --version 0.14.1 --features binary --locked")


class S3:
    def __init__(self, root):
        os.makedirs(os.path.join(root, "bkt"), exist_ok=True)
        self.port = free_port()
        self.p = subprocess.Popen([s3s_fs(), "--host", "127.0.0.1", "--port", str(self.port),
                                   "--access-key", "AK", "--secret-key", "SK", root],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        self.env = dict(os.environ, AWS_ENDPOINT_URL=f"http://127.0.0.1:{self.port}",
                        AWS_REGION="us-east-1", AWS_ACCESS_KEY_ID="AK",
                        AWS_SECRET_ACCESS_KEY="SK", AWS_ALLOW_HTTP="true")

    def stop(self):
        self.p.kill()
        self.p.wait()


def start(binary, data, env, archive=None, lag="1s"):
    port = free_port()
    args = [binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data,
            "--shards", "2", "--fsync", "always"]
    if archive:
        args += ["--archive", archive, "--archive-lag", lag]
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         env=env)
    for line in p.stderr:
        if "ready to accept connections" in line:
            break
    else:
        sys.exit(f"{binary} did not start")
    threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
    cli(port, "PITR.ENABLE", "default")
    return p, port


def cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *args], check=True,
                          capture_output=True, text=True).stdout


def info(port):
    out = {}
    for line in cli(port, "INFO", "archive").splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            out[k] = v.strip()
    return out


def wait_caught_up(port, limit=600):
    deadline = time.time() + limit
    while time.time() < deadline:
        i = info(port)
        if i.get("archive_lag_seconds") == "0.000" and i.get("archive_status") == "ok":
            return
        time.sleep(0.2)
    sys.exit("the archive did not catch up")


def stop(p):
    p.terminate()
    p.wait()


def set_rps(port, n):
    out = subprocess.run(["redis-benchmark", "-p", str(port), "-t", "set", "-P", "16", "-c", "50",
                          "-n", str(n), "-r", "100000", "-d", "100", "-q"],
                         capture_output=True, text=True, check=True).stdout
    for tok in out.replace("\r", "\n").split():
        try:
            return float(tok)
        except ValueError:
            continue
    sys.exit(f"no rate in {out!r}")


def throughput(args, tmp, s3):
    res = {"off": [], "on": []}
    for r in range(args.rounds):
        order = ["off", "on"] if r % 2 == 0 else ["on", "off"]
        for mode in order:
            data = os.path.join(tmp, f"tp-{r}-{mode}")
            url = f"s3://bkt/tp-{r}" if mode == "on" else None
            p, port = start(args.bin, data, s3.env, url)
            res[mode].append(set_rps(port, args.set_requests))
            if mode == "on":
                wait_caught_up(port)
            stop(p)
            shutil.rmtree(data, ignore_errors=True)
    off, on = statistics.median(res["off"]), statistics.median(res["on"])
    print(f"SET -P 16 --fsync always, redis-benchmark, {args.rounds} rounds: "
          f"without archive {off:,.0f}/s, with {on:,.0f}/s, ratio {on / off:.3f} "
          f"(each: off {res['off']}, on {res['on']})")


def steady(args, tmp, s3):
    data = os.path.join(tmp, "steady")
    p, port = start(args.bin, data, s3.env, "s3://bkt/steady")
    wait_caught_up(port)
    before = int(info(port)["archive_puts"])
    lags = []
    stop_flag = threading.Event()

    def sample():
        while not stop_flag.is_set():
            lags.append(float(info(port)["archive_lag_seconds"]))
            time.sleep(0.2)

    t = threading.Thread(target=sample)
    t.start()
    t0 = time.time()
    subprocess.run([args.loadgen, "run", "--addr", f"127.0.0.1:{port}", "--rate", str(args.rate),
                    "--ratio", "1:0", "--duration", f"{args.seconds}s", "--connections", "50",
                    "--table", "default"], check=True, stdout=subprocess.DEVNULL)
    elapsed = time.time() - t0
    stop_flag.set()
    t.join()
    after = int(info(port)["archive_puts"])
    stop(p)
    lags.sort()
    q = lambda f: lags[min(len(lags) - 1, int(f * len(lags)))]
    print(f"steady {args.rate:,} SET/s for {elapsed:.0f} s with --archive-lag 1s: "
          f"{(after - before) / elapsed * 3600:,.0f} PUTs per hour ({after - before} PUTs); "
          f"recovery point (archive_lag_seconds, {len(lags)} samples): p50 {q(0.5):.3f} s, "
          f"p99 {q(0.99):.3f} s, max {lags[-1]:.3f} s")


def restore_times(args, tmp, s3):
    data = os.path.join(tmp, "big")
    url = "s3://bkt/big"
    p, port = start(args.bin, data, s3.env, url)
    subprocess.run(["redis-benchmark", "-p", str(port), "-t", "set", "-P", "16", "-c", "50",
                    "-n", str(args.writes), "-r", "1000000", "-d", "100", "-q"],
                   capture_output=True, check=True)
    wait_caught_up(port)
    stop(p)
    t0 = time.time()
    subprocess.run([args.bin, "restore", "--data-dir", data, "--source", "default",
                    "--target", "local", "--latest"], check=True, env=s3.env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    local = time.time() - t0
    t0 = time.time()
    subprocess.run([args.bin, "restore", "--archive", url, "--data-dir",
                    os.path.join(tmp, "from-archive"), "--source", "default", "--target",
                    "remote", "--latest"], check=True, env=s3.env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    remote = time.time() - t0
    print(f"restore of {args.writes:,} writes (1,000,000 keys): local {local:.2f} s, "
          f"from the archive {remote:.2f} s, ratio {remote / local:.2f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/rewind")
    ap.add_argument("--loadgen", default="target/release/rewind-loadgen")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--set-requests", type=int, default=1_000_000)
    ap.add_argument("--rate", type=int, default=10_000)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--writes", type=int, default=10_000_000)
    ap.add_argument("--only", choices=["throughput", "steady", "restore"])
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="archive-bench-")
    s3 = S3(os.path.join(tmp, "s3"))
    try:
        if args.only in (None, "throughput"):
            throughput(args, tmp, s3)
        if args.only in (None, "steady"):
            steady(args, tmp, s3)
        if args.only in (None, "restore"):
            restore_times(args, tmp, s3)
    finally:
        s3.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
