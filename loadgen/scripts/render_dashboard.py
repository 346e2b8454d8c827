#!/usr/bin/env python3
"""Renders docs/grafana-rewind.json from a real run, without Grafana (Debian has none): starts
rewind (target/release) with --metrics-listen and a Prometheus server (Debian's) scraping it
every second, drives rewind-loadgen through a few phases (open loop at rising rates on two
tables, then a closed loop), then asks Prometheus for every panel's queries over the run
(query_range, as Grafana would) and draws each panel where the dashboard's gridPos puts it,
as SVG in one HTML page that headless Chromium turns into a PNG.

Usage: loadgen/scripts/render_dashboard.py [--out docs/img/dashboard.png] [--phase-seconds 30]
"""
import argparse, html, json, os, shutil, socket, subprocess, sys, tempfile, time
import urllib.parse, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLORS = ["#3274d9", "#e0752d", "#56a64b", "#c4162a", "#8f3bb8", "#f2cc0c", "#1f78c1", "#ba43a9"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def wait_ready(proc, log_path, marker):
    for _ in range(600):
        if marker in open(log_path).read():
            return
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise SystemExit(f"never saw {marker!r} in {log_path}")


def fmt(v, unit):
    if unit == "s":
        return f"{v * 1e3:.2f} ms" if v < 1 else f"{v:.2f} s"
    if unit in ("bytes", "Bps"):
        suffix = "/s" if unit == "Bps" else ""
        for u, n in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
            if abs(v) >= n:
                return f"{v / n:.1f} {u}{suffix}"
        return f"{v:.0f} B{suffix}"
    if unit == "bytes":
        for u, n in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
            if abs(v) >= n:
                return f"{v / n:.1f} {u}"
        return f"{v:.0f} B"
    if abs(v) >= 1e6:
        return f"{v / 1e6:.2f}M"
    if abs(v) >= 1e3:
        return f"{v / 1e3:.1f}k"
    return f"{v:.2f}" if abs(v) < 10 else f"{v:.0f}"


def right_axis(panel):
    """The series names a `custom.axisPlacement: right` override moves to the right axis,
    with their unit."""
    out = {}
    for o in panel["fieldConfig"].get("overrides", []):
        props = {p["id"]: p["value"] for p in o.get("properties", [])}
        if o["matcher"]["id"] == "byName" and props.get("custom.axisPlacement") == "right":
            out[o["matcher"]["options"]] = props.get("unit", "short")
    return out


def svg_panel(panel, series, t0, t1, w, h):
    unit = panel["fieldConfig"]["defaults"].get("unit", "short")
    moved = right_axis(panel)
    left, top, bottom = 70, 30, 20 + 16 * ((len(series) + 1) // 2)
    right = 70 if any(label in moved for label, _ in series) else 10
    pw, ph = w - left - right, h - top - bottom

    def vmax_of(pick):
        vals = [v for label, pts in series if pick(label) for _, v in pts]
        m = max(vals) if vals else 1.0
        return m * 1.1 if m > 0 else 1.0

    lmax = vmax_of(lambda label: label not in moved)
    rmax = vmax_of(lambda label: label in moved)
    runit = next(iter(moved.values()), "short")
    out = [f'<svg width="{w}" height="{h}" xmlns="http://www.w3.org/2000/svg">',
           f'<rect width="{w}" height="{h}" fill="#181b1f" rx="4"/>',
           f'<text x="10" y="20" fill="#d8d9da" font-size="14" font-weight="600">{html.escape(panel["title"])}</text>']
    for i in range(5):
        y = top + ph * i / 4
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y}" y2="{y}" stroke="#2c3235"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4}" fill="#8e8e8e" font-size="11" text-anchor="end">'
                   f'{fmt(lmax * (4 - i) / 4, unit)}</text>')
        if right > 10:
            out.append(f'<text x="{left + pw + 6}" y="{y + 4}" fill="#8e8e8e" font-size="11">'
                       f'{fmt(rmax * (4 - i) / 4, runit)}</text>')
    for k, (label, pts) in enumerate(series):
        if not pts:
            continue
        c = COLORS[k % len(COLORS)]
        vmax = rmax if label in moved else lmax
        path = " ".join(f"{left + pw * (t - t0) / (t1 - t0):.1f},{top + ph * (1 - v / vmax):.1f}" for t, v in pts)
        out.append(f'<polyline points="{path}" fill="none" stroke="{c}" stroke-width="1.6"/>')
        lx, ly = left + (k % 2) * (pw // 2), top + ph + 18 + 16 * (k // 2)
        side = " (right axis)" if label in moved else ""
        out.append(f'<rect x="{lx}" y="{ly - 9}" width="12" height="3" fill="{c}"/>')
        out.append(f'<text x="{lx + 16}" y="{ly - 4}" fill="#c7d0d9" font-size="11">{html.escape(label + side)[:60]}</text>')
    if not any(pts for _, pts in series):
        out.append(f'<text x="{left + pw / 2}" y="{top + ph / 2}" fill="#8e8e8e" font-size="13" '
                   f'text-anchor="middle">No data (nothing of this kind in the run)</text>')
    out.append("</svg>")
    return "".join(out)


def label_for(fmt_str, metric):
    out = fmt_str
    for k, v in metric.items():
        out = out.replace("{{" + k + "}}", v)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "img", "dashboard.png"))
    ap.add_argument("--phase-seconds", type=int, default=30)
    a = ap.parse_args()
    rewind = os.path.join(ROOT, "target", "release", "rewind")
    loadgen = os.path.join(ROOT, "target", "release", "rewind-loadgen")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not (os.path.exists(rewind) and os.path.exists(loadgen) and shutil.which("prometheus") and chromium):
        raise SystemExit("needs target/release/{rewind,rewind-loadgen} (cargo build --release), "
                         "prometheus and chromium (Debian)")
    dash = json.load(open(os.path.join(ROOT, "docs", "grafana-rewind.json")))
    work = tempfile.mkdtemp(prefix="dashboard-")
    port, mport, pport = free_port(), free_port(), free_port()
    procs = []
    try:
        # The server's log goes to a file (a pipe nobody reads would block it once full).
        log_path = os.path.join(work, "rewind.log")
        srv = subprocess.Popen([rewind, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir",
                                os.path.join(work, "data"), "--metrics-listen", f"127.0.0.1:{mport}",
                                "--maintenance-secs", "5", "--checkpoint-secs", "20"],
                               stdout=subprocess.DEVNULL, stderr=open(log_path, "w"))
        procs.append(srv)
        wait_ready(srv, log_path, "ready to accept connections")
        cfg = os.path.join(work, "prometheus.yml")
        open(cfg, "w").write("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: rewind\n"
                             f"    static_configs:\n      - targets: ['127.0.0.1:{mport}']\n")
        procs.append(subprocess.Popen(["prometheus", f"--config.file={cfg}",
                                       f"--storage.tsdb.path={work}/tsdb",
                                       f"--web.listen-address=127.0.0.1:{pport}"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for _ in range(100):
            try:
                get(f"http://127.0.0.1:{pport}/-/ready")
                break
            except (OSError, ValueError):
                time.sleep(0.2)
        subprocess.run(["redis-cli", "-p", str(port), "TABLE.CREATE", "orders"], check=True,
                       stdout=subprocess.DEVNULL)
        t0 = time.time()
        base = [loadgen, "run", "--addr", f"127.0.0.1:{port}", "--duration", f"{a.phase_seconds}s",
                "--keys", "200000"]
        phases = [
            ["--rate", "5000", "--ratio", "1:4", "--connections", "20"],
            ["--rate", "20000", "--ratio", "1:1", "--connections", "50", "--table", "orders"],
            ["--connections", "50", "--pipeline", "16", "--ratio", "1:0", "--value-size", "512"],
        ]
        for p in phases:
            print("loadgen", " ".join(p), file=sys.stderr, flush=True)
            subprocess.run(base + p, check=True, stdout=subprocess.DEVNULL)
        time.sleep(3)
        t1 = time.time()
        step = max(1, int((t1 - t0) / 200))
        width, unit_w, row_h = 1600, 1600 / 24, 34
        cells, bottom = [], 0
        for panel in dash["panels"]:
            series = []
            for tgt in panel["targets"]:
                q = tgt["expr"].replace("$__rate_interval", "10s").replace("$instance", ".*")
                r = get(f"http://127.0.0.1:{pport}/api/v1/query_range?" + urllib.parse.urlencode(
                    {"query": q, "start": t0, "end": t1, "step": step}))
                for res in r["data"]["result"]:
                    pts = [(float(t), float(v)) for t, v in res["values"] if v not in ("NaN", "+Inf", "-Inf")]
                    series.append((label_for(tgt.get("legendFormat", ""), res["metric"]), pts))
            g = panel["gridPos"]
            x, y, w, h = g["x"] * unit_w, g["y"] * row_h, g["w"] * unit_w - 8, g["h"] * row_h - 8
            bottom = max(bottom, y + h + 8)
            cells.append(f'<div style="position:absolute;left:{x}px;top:{y}px">'
                         f'{svg_panel(panel, series[:8], t0, t1, int(w), int(h))}</div>')
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t0))
        page = (f'<html><body style="margin:0;background:#111217;font-family:sans-serif">'
                f'<div style="color:#d8d9da;padding:8px 12px;font-size:16px">{html.escape(dash["title"])} '
                f'dashboard (docs/grafana-rewind.json), {when}, {int(t1 - t0)} s of rewind-loadgen: '
                f'5k/s 1:4 SET:GET, 20k/s 1:1 into table orders, closed loop SET -P 16 512 B; '
                f'drawn from Prometheus query_range by loadgen/scripts/render_dashboard.py</div>'
                f'<div style="position:relative;height:{bottom}px">{"".join(cells)}</div></body></html>')
        page_path = os.path.join(work, "dashboard.html")
        open(page_path, "w").write(page)
        os.makedirs(os.path.dirname(a.out), exist_ok=True)
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--window-size={width},{int(bottom) + 40}", f"--screenshot={a.out}",
                        f"file://{page_path}"], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        print(f"wrote {a.out}", file=sys.stderr)
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
