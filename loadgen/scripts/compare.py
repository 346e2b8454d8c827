#!/usr/bin/env python3
"""rewind against Redis on this machine, in one command.

Builds the release binaries, installs Redis (Debian's redis-server and redis-tools) if
missing, probes the disk's fdatasync latency, then for every server configuration -- Redis
with appendfsync always / everysec / persistence off, rewind with --fsync always / everysec /
never (epoll sockets, pwrite logs), and rewind --fsync always with --io uring and with
--log-io uring -- starts it on loopback with a
fresh directory and runs the cells (SET and GET x 100 B and 4 KiB values x pipeline 1 and 16,
50 connections) with both redis-benchmark and rewind-loadgen. All servers run at once and each cell visits
them in turn, so noise on a shared machine spreads over servers alike. Then memory per key and disk
bytes per logical byte after loading 1M keys, and restore time against Redis's AOF load.
Writes results.md, results.json and one SVG latency plot per cell into --out, and prints the
report.

Usage: loadgen/scripts/compare.py [--out bench-results] [--seconds 2] [--rounds 1] [--quick]
       [--restore-writes 3000000] [--no-build]
"""
import argparse, json, os, shlex, shutil, signal, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import cells, extras, machine, plot, report  # noqa: E402
from bench.servers import ROOT, lineup  # noqa: E402


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def ensure_redis():
    if shutil.which("redis-server") and shutil.which("redis-benchmark") and shutil.which("redis-cli"):
        return
    log("installing redis-server and redis-tools (apt-get)")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "redis-server", "redis-tools"],
                   check=True, env=env)
    # The package starts a system Redis on 6379; the harness uses its own ports.


def pick(servers, names, base):
    """The named servers of the line-up; `rewind [VAR=VALUE ...] FLAGS` adds a rewind with
    that environment and those flags, paired with Redis at the durability its --fsync names."""
    from bench.servers import Server
    out = []
    for n in names:
        known = [s for s in servers if s.name == n]
        if known:
            out += known
        elif n.startswith("rewind "):
            words = n.split()[1:]
            env = dict(w.split("=", 1) for w in words if "=" in w and not w.startswith("-"))
            flags = [w for w in words if not ("=" in w and not w.startswith("-"))]
            fsync = flags[flags.index("--fsync") + 1] if "--fsync" in flags else "always"
            out.append(Server(n, "rewind", {"never": "off"}.get(fsync, fsync), flags, base, env))
        else:
            raise SystemExit(f"unknown server {n!r}")
    return out


def median_run(rs):
    """The run with the median throughput (its latencies stay those of one real run)."""
    return sorted(rs, key=lambda r: r["ops"])[len(rs) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "bench-results"))
    ap.add_argument("--seconds", type=float, default=2.0, help="per cell and tool")
    ap.add_argument("--quick", action="store_true", help="100 B only, no I/O-mode servers, "
                    "smaller memory and restore runs (a smoke test of the harness)")
    ap.add_argument("--rounds", type=int, default=1, help="runs per cell; the median is kept")
    ap.add_argument("--restore-writes", type=int, default=3_000_000)
    ap.add_argument("--memory-keys", type=int, default=1_000_000)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--servers", help="only these (comma-separated names as in the report, "
                    "e.g. 'rewind always,redis always'), or 'rewind FLAGS' for extra rewind variants "
                    "('rewind REWIND_BIN=PATH FLAGS' runs another build of rewind beside this one; "
                    "the variable is read from the variant only, and PATH may not hold spaces)")
    ap.add_argument("--values", help="only these value sizes, e.g. 100")
    ap.add_argument("--pipelines", help="only these pipeline depths, e.g. 16")
    ap.add_argument("--no-extras", action="store_true", help="skip memory, disk and restore")
    args = ap.parse_args()
    started = time.time()
    ensure_redis()
    if not args.no_build:
        log("building release binaries")
        subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "rewind", "-p", "rewind-loadgen"],
                       cwd=ROOT, check=True)
    base = tempfile.mkdtemp(prefix="rewind-compare-")
    os.makedirs(os.path.join(args.out, "plots"), exist_ok=True)
    try:
        log("probing the machine and the disk's fdatasync latency")
        info = machine.describe(base)
        fsync = machine.fsync_latency_us(base)
        sizes = (100,) if args.quick else (100, 4096)
        if args.values:
            sizes = tuple(int(v) for v in args.values.split(","))
        pipes = (1, 16) if not args.pipelines else tuple(int(p) for p in args.pipelines.split(","))
        servers = lineup(base, io_modes=()) if args.quick else lineup(base)
        if args.servers:
            servers = pick(servers, [n.strip() for n in args.servers.split(",")], base)
        grid = [(cmd, size, pipe) for size in sizes for pipe in pipes for cmd in ("SET", "GET")]
        # Every server runs for the whole comparison; each cell visits them one after the
        # other, so a burst of noise on this shared machine hits one cell, not one server.
        runs = {}
        try:
            for srv in servers:
                srv.start()
            for rnd in range(args.rounds):
                for size in sizes:
                    for srv in servers:
                        cells.fill(srv, size)
                    for pipe in pipes:
                        log(f"round {rnd + 1}/{args.rounds}: {size} B values, pipeline {pipe}")
                        for srv in servers:
                            rb = cells.redis_benchmark(srv, pipe, size, args.seconds)
                            for cmd in ("SET", "GET"):
                                runs.setdefault((srv.name, "redis-benchmark", cmd, size, pipe), []).append(rb[cmd])
                            for cmd in ("SET", "GET"):
                                r = cells.loadgen(srv, cmd, pipe, size, args.seconds)
                                runs.setdefault((srv.name, "rewind-loadgen", cmd, size, pipe), []).append(r)
                                log(f"    {srv.name:26} {cmd} {size} B -P {pipe}: {r['ops']:>12,.0f} ops/s, "
                                    f"p99 {r['p99']:.3f} ms")
        finally:
            for srv in servers:
                srv.stop()
        res = {k: median_run(v) for k, v in runs.items()}
        ext = {}
        if not args.no_extras:
            log("memory per key and disk bytes per logical byte")
            ext["memory"] = extras.memory_and_disk(base, keys=args.memory_keys // (10 if args.quick else 1))
            log("restore against Redis's AOF load")
            writes = args.restore_writes // (10 if args.quick else 1)
            ext["restore"] = extras.restore(writes, shards=os.cpu_count())
        for cmd, size, pipe in grid:
            for dur in ("always", "everysec", "off"):
                series = [(name, r["dist"]) for (name, tool, c, s, p), r in res.items()
                          if tool == "rewind-loadgen" and (c, s, p) == (cmd, size, pipe)
                          and any(x.name == name and x.durability == dur for x in servers)]
                if series:
                    title = f"{cmd} {size} B, pipeline {pipe}, durability {dur} (rewind-loadgen)"
                    fname = f"{cmd.lower()}-{size}b-p{pipe}-{dur}.svg"
                    with open(os.path.join(args.out, "plots", fname), "w") as f:
                        f.write(plot.svg(title, series))
        minutes = (time.time() - started) / 60
        command = "python3 loadgen/scripts/compare.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        md = report.markdown(info, fsync, res, grid, ext, command.strip(), minutes,
                             report.pairs_of(servers))
        with open(os.path.join(args.out, "results.md"), "w") as f:
            f.write(md)
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump({"machine": info, "fsync_us": fsync, "extras": ext,
                       "cells": [{"server": k[0], "tool": k[1], "cmd": k[2], "size": k[3],
                                  "pipeline": k[4], **v}
                                 for k, v in res.items()]}, f, indent=1)
        print(md)
        log(f"done in {minutes:.1f} minutes; results in {args.out}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _terminated(signum, _frame):
    # SIGTERM (CI's `timeout`, a user's kill) unwinds through the `finally`s: the servers
    # stop and the temporary directories go, rather than outliving the harness.
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminated)
    main()
