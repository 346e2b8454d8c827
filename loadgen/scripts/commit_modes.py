#!/usr/bin/env python3
"""Who commits the log: `--commit thread` (each shard's writer thread) against `--commit
inline` (the net thread, through its own io_uring ring), side by side.

For each round and each server (fresh data directory each), `redis-benchmark` runs SET with
100-byte values, 50 connections, over 100,000 keys: 100,000 requests at pipeline 1 and
600,000 at pipeline 16. Reported per server and pipeline, medians over the rounds: requests
per second, the server's CPU time per request (every thread of the process, from
/proc/PID/task/*/stat, kernel time included) and its context switches per request.

    python3 loadgen/scripts/commit_modes.py --rounds 5 [--also NAME=BINARY ...]

`--also` adds another rewind binary (an older build, say) run with its default flags.
Needs release builds (`cargo build --release`) and redis-benchmark (Debian redis-tools).
"""
import argparse
import glob
import os
import shutil
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cpu_and_switches(pid):
    ticks, switches = 0, 0
    for task in glob.glob(f"/proc/{pid}/task/*"):
        try:
            fields = open(task + "/stat").read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
            for line in open(task + "/status"):
                if "ctxt_switches" in line:
                    switches += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return ticks / os.sysconf("SC_CLK_TCK"), switches


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/rewind"))
    ap.add_argument("--also", action="append", default=[], help="NAME=BINARY")
    args = ap.parse_args()
    servers = [("thread", args.binary, ["--commit", "thread"]),
               ("inline", args.binary, ["--commit", "inline"])]
    for a in args.also:
        name, binary = a.split("=", 1)
        servers.append((name, binary, []))
    base = tempfile.mkdtemp(prefix="rewind-commit-")
    results = {}
    port = 7450
    try:
        for _ in range(args.rounds):
            for name, binary, flags in servers:
                port += 1
                data = os.path.join(base, name)
                shutil.rmtree(data, ignore_errors=True)
                proc = subprocess.Popen(
                    [binary, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}"] + flags,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                deadline = time.time() + 10
                while subprocess.run(["redis-cli", "-p", str(port), "ping"],
                                     capture_output=True).returncode != 0:
                    if time.time() > deadline:
                        raise SystemExit(f"{name} did not start")
                    time.sleep(0.05)
                try:
                    for pipe, n in ((1, 100_000), (16, 600_000)):
                        cpu0, sw0 = cpu_and_switches(proc.pid)
                        t0 = time.time()
                        subprocess.run(["redis-benchmark", "-p", str(port), "-t", "set", "-n", str(n),
                                        "-P", str(pipe), "-c", "50", "-r", "100000", "-d", "100", "-q"],
                                       capture_output=True, check=True)
                        dt = time.time() - t0
                        cpu1, sw1 = cpu_and_switches(proc.pid)
                        results.setdefault((pipe, name), []).append(
                            (n / dt, (cpu1 - cpu0) / n * 1e6, (sw1 - sw0) / n))
                finally:
                    proc.terminate()
                    proc.wait()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print("| SET 100 B | commit | requests/s | server CPU µs/request | context switches/request | rounds |")
    print("|---|---|---:|---:|---:|---|")
    for (pipe, name), v in sorted(results.items()):
        ops = statistics.median(x[0] for x in v)
        us = statistics.median(x[1] for x in v)
        cs = statistics.median(x[2] for x in v)
        rounds = ", ".join(f"{x[0] / 1000:.0f}k" for x in v)
        print(f"| -P {pipe} | {name} | {ops:,.0f} | {us:.2f} | {cs:.2f} | {rounds} |")


if __name__ == "__main__":
    main()
