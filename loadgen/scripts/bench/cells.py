"""One cell = one server x one command (SET or GET) x value size x pipeline depth, 50
connections over 100,000 keys, measured with redis-benchmark and with rewind-loadgen, and the
server's CPU per operation from /proc."""
import csv, io, json, os, subprocess, tempfile

from .servers import LOADGEN, cpu_seconds

CONNECTIONS = 50
KEYS = 100_000


def requests_for(pipeline, size, budget):
    """redis-benchmark takes a request count, not a duration: sized for about `budget` seconds
    at the rates this kind of machine reaches."""
    rate = 60_000 if pipeline == 1 else 500_000
    if size > 1024:
        rate //= 3
    return max(10_000, int(rate * budget))


def redis_benchmark(server, pipeline, size, budget):
    """SET then GET in one run (GET reads the keys the SETs wrote). Returns {cmd: result}."""
    n = requests_for(pipeline, size, budget)
    argv = ["redis-benchmark", "-p", str(server.port), "-t", "set,get", "-n", str(n),
            "-c", str(CONNECTIONS), "-P", str(pipeline), "-r", str(KEYS), "-d", str(size), "--csv"]
    out = {}
    # Two runs would double the time; CPU is split by each command's share of the run.
    before = cpu_seconds(server.pid)
    res = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    cpu = cpu_seconds(server.pid) - before
    if res.returncode != 0:
        raise SystemExit(f"redis-benchmark failed against {server.name}: {res.stderr[-500:]}")
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    secs = sum(n / float(r["rps"]) for r in rows)
    for r in rows:
        cmd = r["test"].upper()
        share = (n / float(r["rps"])) / secs
        out[cmd] = {"ops": float(r["rps"]), "p50": float(r["p50_latency_ms"]),
                    "p99": float(r["p99_latency_ms"]), "p999": None,
                    "max": float(r["max_latency_ms"]), "cpu_us": cpu * share * 1e6 / n}
    return out


def loadgen(server, cmd, pipeline, size, budget):
    """rewind-loadgen closed loop, SET-only or GET-only, for `budget` seconds."""
    ratio = "1:0" if cmd == "SET" else "0:1"
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        path = f.name
    argv = [LOADGEN, "run", "--addr", f"127.0.0.1:{server.port}", "--connections", str(CONNECTIONS),
            "--pipeline", str(pipeline), "--duration", f"{budget}s", "--ratio", ratio,
            "--keys", str(KEYS), "--value-size", str(size), "--json", path]
    before = cpu_seconds(server.pid)
    res = subprocess.run(argv, capture_output=True, text=True, timeout=budget + 120)
    cpu = cpu_seconds(server.pid) - before
    try:
        if res.returncode != 0:
            raise SystemExit(f"rewind-loadgen failed against {server.name}: {res.stderr[-500:]}")
        with open(path) as f:
            doc = json.load(f)
    finally:
        os.unlink(path)
    stats = doc["ALL STATS"]["Sets" if cmd == "SET" else "Gets"]
    if doc["ALL STATS"]["Errors"]:
        raise SystemExit(f"errors against {server.name}: {doc['ALL STATS']['Errors']}")
    p = stats["Percentile Latencies"]
    return {"ops": stats["Ops/sec"], "p50": p["p50.00"], "p99": p["p99.00"], "p999": p["p99.90"],
            "max": stats["Max Latency"], "cpu_us": cpu * 1e6 / max(1, stats["Count"]),
            "dist": stats["Percentile Distribution"]}


def fill(server, size):
    """Writes every key once so GET cells read real values."""
    argv = [LOADGEN, "run", "--addr", f"127.0.0.1:{server.port}", "--connections", "10",
            "--pipeline", "64", "--ratio", "1:0", "--key-dist", "sequential", "--keys", str(KEYS),
            "--requests", str(KEYS), "--duration", "120s", "--value-size", str(size)]
    subprocess.run(argv, capture_output=True, check=True, timeout=180)
