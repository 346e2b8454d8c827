"""Starting and stopping the servers under test on loopback, each with a fresh directory."""
import os, shutil, signal, socket, subprocess, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
# Where cargo put the release build: CARGO_TARGET_DIR (a relative one from the root, where the
# harness runs cargo) or ./target. A `build.target-dir` in a cargo config is not read.
TARGET = os.path.abspath(os.path.join(ROOT, os.environ.get("CARGO_TARGET_DIR") or "target"))
REWIND = os.path.join(TARGET, "release", "rewind")
LOADGEN = os.path.join(TARGET, "release", "rewind-loadgen")
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu_seconds(pid):
    """User + system CPU seconds the process has used (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def du_bytes(path):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


class Server:
    """One configuration: `kind` is "rewind" or "redis"; `durability` is the name shared by a
    rewind/Redis pair (always, everysec, never/off); `flags` are extra command-line flags."""

    def __init__(self, name, kind, durability, flags, base_dir, env=None):
        self.name, self.kind, self.durability, self.flags = name, kind, durability, flags
        self.base_dir, self.env = base_dir, env or {}
        self.proc = None

    def argv(self):
        if self.kind == "rewind":
            # REWIND_BIN in a variant's environment runs another build side by side.
            return [self.env.get("REWIND_BIN", REWIND), "serve", "--listen",
                    f"127.0.0.1:{self.port}", "--data-dir", self.dir, *self.flags]
        return ["redis-server", "--port", str(self.port), "--dir", self.dir, "--save", "",
                "--bind", "127.0.0.1", "--protected-mode", "no", "--logfile",
                os.path.join(self.dir, "redis.log"), *self.flags]

    def start(self):
        self.dir = tempfile.mkdtemp(prefix=f"{self.kind}-", dir=self.base_dir)
        self.port = free_port()
        self.proc = subprocess.Popen(self.argv(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, env={**os.environ, **self.env})
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited at start-up ({self.proc.returncode})")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise SystemExit(f"{self.name} did not start")

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


def lineup(base_dir, io_modes=(("--io", "uring"), ("--log-io", "uring"))):
    """The servers of the comparison: Redis at three durability levels, rewind at the matching
    three (default I/O: epoll sockets, pwrite logs), and rewind's io_uring paths at
    `--fsync always`: all io_uring, and the io_uring log engine alone."""
    out = [
        Server("redis always", "redis", "always", ["--appendonly", "yes", "--appendfsync", "always"], base_dir),
        Server("redis everysec", "redis", "everysec", ["--appendonly", "yes", "--appendfsync", "everysec"], base_dir),
        Server("redis off", "redis", "off", ["--appendonly", "no"], base_dir),
        Server("rewind always", "rewind", "always", ["--fsync", "always"], base_dir),
        Server("rewind everysec", "rewind", "everysec", ["--fsync", "everysec"], base_dir),
        Server("rewind never", "rewind", "off", ["--fsync", "never"], base_dir),
    ]
    for flag, mode in io_modes:
        out.append(Server(f"rewind always {flag} {mode}", "rewind", "always",
                          ["--fsync", "always", flag, mode], base_dir))
    return out
