#!/usr/bin/env python3
"""What rewind's observability costs: SET 100 B, pipeline 16, 50 connections, --fsync always,
redis-benchmark, against three servers started side by side and visited in turn each round
(each round starting with the next one):

  before   a rewind binary built without per-command counters (--before PATH)
  now      this tree's target/release/rewind
  metrics  the same with --metrics-listen, scraped by curl once a second while it serves

Prints every round and the medians of throughput and of server CPU per request (user + system
time of the server process from /proc, over the requests of the round; steadier than
throughput on a small shared VM), and the ratios now/before and metrics/now.

Usage: loadgen/scripts/metrics_cost.py --before /tmp/rewind-before [--rounds 7] [--requests 300000]
"""
import argparse, os, re, shutil, socket, statistics, subprocess, sys, tempfile, threading

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(binary, extra, workdir):
    port = free_port()
    data = tempfile.mkdtemp(dir=workdir)
    p = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data,
                          "--fsync", "always"] + extra,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in p.stderr:
        if "ready to accept connections" in line:
            break
    threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
    return p, port


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench(port, requests):
    out = subprocess.run(["redis-benchmark", "-p", str(port), "-t", "set", "-P", "16", "-c", "50",
                          "-d", "100", "-n", str(requests), "-r", "100000", "-q"],
                         capture_output=True, text=True, timeout=300).stdout
    m = re.findall(r"([\d.]+) requests per second", out)
    return float(m[-1]) if m else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--requests", type=int, default=300000)
    ap.add_argument("--third", default="", help="flags for a third rewind instead of the "
                    "--metrics-listen one (e.g. '--slowlog-log-slower-than -1')")
    a = ap.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench import machine  # noqa: E402
    now_bin = os.path.join(ROOT, "target", "release", "rewind")
    work = tempfile.mkdtemp(prefix="metrics-cost-")
    disk = machine.disk_facts(work)
    print(f"disk {disk['device']}: {disk['write_cache']} cache, FUA {disk['fua']}; "
          f"{os.cpu_count()} cores", flush=True)
    mport = free_port()
    servers = {
        "before": start(a.before, [], work),
        "now": start(now_bin, [], work),
        "metrics": start(now_bin, a.third.split() if a.third else
                         ["--metrics-listen", f"127.0.0.1:{mport}"], work),
    }
    scrapes = [0]
    got = {k: [] for k in servers}
    cpu = {k: [] for k in servers}
    try:
        names = list(servers)
        for r in range(a.rounds):
            # Each round starts with another server, so no one always runs after the same.
            for name in names[r % 3:] + names[:r % 3]:
                p, port = servers[name]
                # The metrics server is scraped once a second while it serves, by curl in a
                # process of its own (as Prometheus would, from outside).
                scraper = None
                if name == "metrics" and not a.third:
                    scraper = subprocess.Popen(
                        ["sh", "-c", f"while :; do curl -s -o /dev/null http://127.0.0.1:{mport}/metrics"
                                     f" && echo x; sleep 1; done"], stdout=subprocess.PIPE, text=True)
                c0 = cpu_seconds(p.pid)
                got[name].append(bench(port, a.requests))
                cpu[name].append((cpu_seconds(p.pid) - c0) / a.requests * 1e6)
                if scraper:
                    scraper.terminate()
                    scrapes[0] += scraper.communicate()[0].count("x")
            print(f"round {r + 1}: " + "  ".join(f"{k} {v[-1]:,.0f}/s {cpu[k][-1]:.2f} us"
                                                  for k, v in got.items()), flush=True)
    finally:
        for p, _ in servers.values():
            p.terminate()
            p.wait()
        shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in got.items()}
    mcpu = {k: statistics.median(v) for k, v in cpu.items()}
    print("medians: " + "  ".join(f"{k} {v:,.0f}/s {mcpu[k]:.3f} us CPU/request" for k, v in med.items()))
    print(f"CPU per request: now/before {mcpu['now'] / mcpu['before']:.3f}  "
          f"metrics/now {mcpu['metrics'] / mcpu['now']:.3f}")
    print(f"now/before {med['now'] / med['before']:.3f}  metrics/now {med['metrics'] / med['now']:.3f}"
          f"  metrics/before {med['metrics'] / med['before']:.3f}  ({scrapes[0]} scrapes)")


if __name__ == "__main__":
    sys.exit(main())
