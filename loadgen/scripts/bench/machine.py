"""What the numbers were measured on: CPU, cores, memory, kernel, file system, the disk's
cache mode and FUA support from /sys/block, and its write+fdatasync latency measured here
(the cost every durable write pays)."""
import os, platform, statistics, subprocess, time


def fsync_latency_us(directory, writes=2000, size=4096):
    """p50/p99 of pwrite(size) + fdatasync into preallocated space, and into a growing file."""
    path = os.path.join(directory, "fsync-probe")
    out = {}
    for mode in ("preallocated", "growing"):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            if mode == "preallocated":
                os.pwrite(fd, b"\0" * (writes * size), 0)
                os.fsync(fd)
            buf = os.urandom(size)
            lat = []
            for i in range(writes):
                t = time.perf_counter_ns()
                os.pwrite(fd, buf, i * size)
                os.fdatasync(fd)
                lat.append((time.perf_counter_ns() - t) / 1000)
            lat.sort()
            out[mode] = {"p50": statistics.median(lat), "p99": lat[int(len(lat) * 0.99)]}
        finally:
            os.close(fd)
            os.unlink(path)
    return out


def disk_facts(directory):
    """The block device under `directory` and what its queue says about durability:
    `write_cache` ("write back": the device may hold acknowledged writes in a volatile cache
    until a flush; "write through": it does not) and `fua` (1: the device honours
    Force-Unit-Access writes, so an O_DSYNC write needs no separate flush)."""
    src = subprocess.run(["df", "--output=source", directory], capture_output=True,
                         text=True).stdout.splitlines()[-1].strip()
    name = os.path.basename(os.path.realpath(src)) if src.startswith("/dev/") else src
    base = f"/sys/class/block/{name}"
    if os.path.exists(f"{base}/partition"):
        name = os.path.basename(os.path.dirname(os.path.realpath(base)))
        base = f"/sys/class/block/{name}"

    def read(f):
        try:
            with open(f"{base}/queue/{f}") as fh:
                return fh.read().strip()
        except OSError:
            return "unknown"
    return {"device": name, "write_cache": read("write_cache"), "fua": read("fua"),
            "rotational": read("rotational")}


def describe(directory):
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_gib = int(f.readline().split()[1]) / (1 << 20)
    fs = subprocess.run(["df", "-T", directory], capture_output=True, text=True).stdout.splitlines()[-1].split()
    redis = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()
    version = next((w.split("=")[1] for w in redis if w.startswith("v=")), "?")
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gib": round(mem_gib, 1),
            "kernel": platform.release(), "fs": f"{fs[1]} on {fs[0]}", "redis": version,
            "disk": disk_facts(directory)}
