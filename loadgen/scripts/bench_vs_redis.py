#!/usr/bin/env python3
"""Side-by-side redis-benchmark runs: rewind against Redis on the same machine, same flags.

Builds the release binary, starts each server on loopback with a fresh data directory, runs
the same redis-benchmark cells against each, alternating servers round by round so drift on
a shared machine hits all of them alike, and prints a markdown table of medians with ratios.
Also reports server CPU microseconds per operation (from /proc/PID/stat), which is what
separates servers once redis-benchmark itself saturates a core at pipeline 1.

Usage: loadgen/scripts/bench_vs_redis.py [--rounds 3] [--requests 200000] [--quick]
Needs redis-server and redis-benchmark (Debian's redis-server and redis-tools).
"""
import argparse, csv, io, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, proc, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"server on {port} did not start")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class Server:
    def __init__(self, name, argv_fn):
        self.name, self.argv_fn = name, argv_fn

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="bench-")
        self.port = free_port()
        self.proc = subprocess.Popen(self.argv_fn(self.port, self.dir), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def servers(which):
    """Each name is either a Redis preset or `rewind` followed by its serve flags."""
    rw = os.path.join(ROOT, "target", "release", "rewind")
    def redis(extra):
        return lambda port, d: ["redis-server", "--port", str(port), "--dir", d, "--save", "",
                                "--bind", "127.0.0.1", "--protected-mode", "no"] + extra
    presets = {
        "redis appendfsync always": redis(["--appendonly", "yes", "--appendfsync", "always"]),
        "redis appendfsync everysec": redis(["--appendonly", "yes", "--appendfsync", "everysec"]),
        "redis persistence off": redis(["--appendonly", "no"]),
    }
    out = []
    for name in which:
        if name in presets:
            out.append(Server(name, presets[name]))
        elif name.split()[0] == "rewind":
            flags = name.split()[1:]
            out.append(Server(name, lambda port, d, flags=flags: [
                rw, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", d] + flags))
        else:
            raise SystemExit(f"unknown server {name!r}")
    return out


def bench(port, test, pipeline, requests, value_size, pid):
    cmd = ["redis-benchmark", "-p", str(port), "-t", test, "-n", str(requests), "-c", "50",
           "-P", str(pipeline), "-r", "100000", "-d", str(value_size), "--csv"]
    before = cpu_seconds(pid)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    cpu = cpu_seconds(pid) - before
    rows = list(csv.DictReader(io.StringIO(out)))
    row = rows[-1]
    return {"rps": float(row["rps"]), "p50": float(row["p50_latency_ms"]),
            "p99": float(row["p99_latency_ms"]), "cpu_us_per_op": cpu * 1e6 / requests}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=200000)
    ap.add_argument("--servers", default="rewind --fsync always,rewind --fsync always --io epoll,"
                    "redis appendfsync always,redis persistence off",
                    help="comma-separated: Redis presets or 'rewind FLAGS'")
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "rewind"], cwd=ROOT, check=True)
    srvs = servers([s.strip() for s in args.servers.split(",")])
    cells = [(t, p) for t in ("set", "get") for p in (1, 16)]
    results = {}
    for r in range(args.rounds):
        for s in srvs:
            s.start()
            try:
                pid = s.proc.pid
                for test, pipe in cells:
                    n = args.requests if pipe > 1 else args.requests // 2
                    results.setdefault((s.name, test, pipe), []).append(
                        bench(s.port, test, pipe, n, 100, pid))
            finally:
                s.stop()
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    base = srvs[-1].name if len(srvs) > 1 else None
    print(f"redis-benchmark -t set|get -c 50 -r 100000 -d 100, -n {args.requests} at -P 16 "
          f"and {args.requests // 2} at -P 1; medians of {args.rounds} rounds\n")
    print("| server | cell | ops/s | p50 ms | p99 ms | server CPU µs/op |")
    print("|---|---|---:|---:|---:|---:|")
    for test, pipe in cells:
        for s in srvs:
            rs = results[(s.name, test, pipe)]
            med = lambda k: statistics.median(x[k] for x in rs)
            print(f"| {s.name} | {test.upper()} -P {pipe} | {med('rps'):,.0f} | {med('p50'):.3f} "
                  f"| {med('p99'):.3f} | {med('cpu_us_per_op'):.2f} |")
    print()
    for test, pipe in cells:
        meds = {s.name: statistics.median(x["rps"] for x in results[(s.name, test, pipe)]) for s in srvs}
        rw = [n for n in meds if n.startswith("rewind")]
        rd = [n for n in meds if n.startswith("redis")]
        for a in rw:
            ratios = ", ".join(f"{meds[a] / meds[b]:.2f}x {b}" for b in rd)
            print(f"- {test.upper()} -P {pipe}: {a} = {ratios}")


if __name__ == "__main__":
    main()
