"""The bench's picture: query latency against history size, and freshness under load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from devtools.bench_common import percentile

FRESHNESS_TARGET_MS = 1000


def _rolling_median(
    points: list[tuple[float, float]], width: float
) -> tuple[list[float], list[float]]:
    """The median of the points within `width` seconds before each point."""
    xs, ys = [], []
    start = 0
    for end, (x, _) in enumerate(points):
        while points[start][0] < x - width:
            start += 1
        xs.append(x)
        ys.append(percentile([y for _, y in points[start : end + 1]], 50))
    return xs, ys


def plot(
    history: dict[str, Any] | None,
    load: list[Any] | None,
    path: Path,
    title: str = "",
) -> Path:
    """Two panels (either may be empty when its section did not run); returns `path`."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display where the bench runs
    import matplotlib.pyplot as plt

    figure, (latency, freshness) = plt.subplots(1, 2, figsize=(13, 5.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]

    if history:
        for color, (route, by_size) in zip(
            colors, history["series"].items(), strict=False
        ):
            sizes = sorted(by_size)
            latency.plot(
                sizes,
                [percentile(by_size[s], 50) for s in sizes],
                "o-",
                color=color,
                label=f"{route} p50",
            )
            latency.plot(
                sizes,
                [percentile(by_size[s], 99) for s in sizes],
                "s--",
                color=color,
                alpha=0.7,
                label=f"{route} p99",
            )
        latency.set_xscale("log")
        sizes = sorted({s for by_size in history["series"].values() for s in by_size})
        latency.set_xticks(sizes, [f"{s:,}" for s in sizes])
        latency.minorticks_off()
        latency.set_ylim(bottom=0)
        latency.legend(fontsize=7, loc="upper left")
    else:
        latency.text(
            0.5, 0.5, "queries: not run", ha="center", transform=latency.transAxes
        )
    latency.set_xlabel("orders of history (log)")
    latency.set_ylabel("latency through the dev host, ms")
    latency.set_title("Query latency against history size")
    latency.grid(True, which="both", alpha=0.3)

    if load:
        for color, level in zip(colors, load, strict=False):
            points = sorted(
                (s.sent - level.started, (s.visible - s.answered) * 1000)
                for s in level.samples
                if s.visible is not None and s.answered is not None
            )
            if not points:
                continue
            freshness.scatter(
                [x for x, _ in points],
                [y for _, y in points],
                s=4,
                color=color,
                alpha=0.35,
            )
            xs, ys = _rolling_median(points, 1.0)
            freshness.plot(
                xs, ys, color=color, label=f"{level.rate} commands/s (1 s median)"
            )
        freshness.axhline(
            FRESHNESS_TARGET_MS,
            color="grey",
            linestyle=":",
            label="target: p99 < 1 s at 50/s",
        )
        freshness.set_yscale("log")
        freshness.legend(fontsize=8, loc="upper left")
    else:
        freshness.text(
            0.5, 0.5, "load: not run", ha="center", transform=freshness.transAxes
        )
    freshness.set_xlabel("seconds into the load level (when the command was sent)")
    where = {"api": "through the API", "cosmos": "in the read model"}
    probe = getattr(load[0], "probe", "") if load else ""
    freshness.set_ylabel(f"202 -> visible {where.get(probe, '')}, ms (log)")
    freshness.set_title("Freshness under an open-loop load")
    freshness.grid(True, which="both", alpha=0.3)

    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
