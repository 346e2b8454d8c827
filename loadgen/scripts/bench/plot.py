"""Latency percentile plots as SVG (no plotting library needed on a fresh machine): x is the
percentile on a "nines" scale (50, 90, 99, 99.9, ...), y the latency in ms on a log scale,
one line per server."""
import math

W, H, L, R, T, B = 800, 420, 70, 270, 40, 50
COLORS = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]
MAX_NINES = 5  # 99.999


def nines(p):
    return min(MAX_NINES, -math.log10(max(1e-9, 1 - p / 100)))


def svg(title, series):
    """series: [(label, [[percentile, ms], ...])]"""
    pts = [(nines(p), v) for _, d in series for p, v in d if v > 0]
    lo = 10 ** math.floor(math.log10(min(v for _, v in pts)))
    hi = 10 ** math.ceil(math.log10(max(v for _, v in pts)))
    pw, ph = W - L - R, H - T - B

    def x(n):
        return L + pw * n / MAX_NINES

    def y(v):
        return T + ph * (1 - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{L}" y="22" font-size="14" font-weight="bold">{title}</text>']
    for n, label in enumerate(["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]):
        out.append(f'<line x1="{x(n):.1f}" y1="{T}" x2="{x(n):.1f}" y2="{T + ph}" stroke="#ddd"/>')
        out.append(f'<text x="{x(n):.1f}" y="{T + ph + 16}" text-anchor="middle">{label}</text>')
    decade = lo
    while decade <= hi * 1.001:
        out.append(f'<line x1="{L}" y1="{y(decade):.1f}" x2="{L + pw}" y2="{y(decade):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{L - 6}" y="{y(decade) + 4:.1f}" text-anchor="end">{decade:g} ms</text>')
        decade *= 10
    out.append(f'<text x="{L + pw / 2}" y="{H - 10}" text-anchor="middle">percentile</text>')
    for i, (label, d) in enumerate(series):
        c = COLORS[i % len(COLORS)]
        path = " ".join(f"{'M' if j == 0 else 'L'}{x(nines(p)):.1f},{y(v):.1f}"
                        for j, (p, v) in enumerate(d) if v > 0 and p <= 99.999)
        out.append(f'<path d="{path}" fill="none" stroke="{c}" stroke-width="2"/>')
        out.append(f'<line x1="{L + pw + 12}" y1="{T + 14 + i * 20}" x2="{L + pw + 32}" y2="{T + 14 + i * 20}" stroke="{c}" stroke-width="2"/>')
        out.append(f'<text x="{L + pw + 38}" y="{T + 18 + i * 20}">{label}</text>')
    out.append("</svg>")
    return "\n".join(out)
