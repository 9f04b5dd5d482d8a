"""The results of ``benchmarks/run.py`` as Markdown and as a bar chart (matplotlib, optional).

    .venv/bin/python benchmarks/report.py [benchmarks/results/latest.json]

re-renders ``latest.md`` and ``latest.png`` next to a results file, without measuring again.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def query_summary(queries: list[int]) -> int | str | None:
    """Queries per request from the probes: one number when they agree, else ``min-max``."""
    if not queries:
        return None
    low, high = min(queries), max(queries)
    return low if low == high else f"{low}-{high}"


def spread(block_throughputs: list[float]) -> str:
    """How much a row's interleaved blocks disagreed: (max - min) / mean."""
    if len(block_throughputs) < 2:
        return "—"
    mean = sum(block_throughputs) / len(block_throughputs)
    if not mean:
        return "—"
    return f"±{(max(block_throughputs) - min(block_throughputs)) / mean * 50:.0f}%"


def _number(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _row_label(row: dict[str, Any]) -> str:
    label = row["label"]
    if row["side"] == "ours" and not row["reference"]:
        label = f"**{label}**"
    if row["reference"]:
        label += " *(measured in verify)*"
    return label


def markdown(results: dict[str, Any]) -> str:
    info = results["machine"]
    packages = ", ".join(f"{name} {version}" for name, version in info["packages"].items())
    lines = [
        "# django-tokens side-by-side benchmark",
        "",
        f"- **Date**: {results['date']} (commit `{info['commit']}`), "
        f"run took {results['elapsed_seconds']:.0f} s",
        f"- **Machine**: {info['cores']} cores ({info['cpu'] or 'unknown CPU'}), "
        f"{info['platform']}, Python {info['python']}",
        f"- **Packages**: {packages}",
        f"- **Database**: {info['database']} (both sides); **cache** of ours: {info['cache']}",
        f"- **Servers**: gunicorn, {info['gunicorn_workers']} sync workers each, 127.0.0.1; "
        f"**load**: {info['clients']} client processes, one connection each (http.client), "
        f"closed loop",
        f"- **Per row**: {info['seconds_per_row']:g} s measured in {info['blocks_per_row']} "
        f"block(s) interleaved with the other rows of its group, {info['warmup_per_block']:g} s "
        f"warm-up per block{' (--quick)' if info['quick'] else ''}",
        f"- **Password hasher**: {info['password_hasher']}; **signing**: {info['signing']}",
        f"- **Load average** (1, 5, 15 min) before: {info['load_average_before']}, "
        f"after: {info['load_average_after']} — other work on the machine shows here; compare "
        "ratios within one run, not absolute numbers across runs",
        "",
        "*ours ÷ this*: the throughput of the group's ours row divided by this row's "
        "(above 1: ours serves more requests per second). *spread*: half the range of the "
        "row's blocks' req/s over their mean — the noise of this run. *queries/req*: SQL "
        "statements per request, counted by the server for a few probe requests "
        "(SAVEPOINTs included). "
        "*Redis/req*: ours' cache round trips per request, counted alike (— when the server "
        "has no Redis cache: the peers use none). A row with errors is flagged ⚠ and its "
        "numbers are not comparable.",
        "",
    ]
    for index, group in enumerate(results["groups"], 1):
        lines += [f"## {index}. {group['title']}", "", group["measures"], ""]
        lines += [
            "| row | req/s | spread | p50 ms | p99 ms | queries/req | Redis/req | errors "
            "| ours ÷ this | notes |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for row in group["rows"]:
            queries = row["queries_per_request"]
            cache = row["cache_round_trips_per_request"]
            errors = f"⚠ {row['errors']}" if row["flagged"] else "0"
            ratio = row["ours_over_this"]
            ratio_text = "—" if row["id"] == group["baseline"] else _number(ratio, 2)
            lines.append(
                f"| {_row_label(row)} | {_number(row['throughput'])} | "
                f"{spread(row['block_throughputs'])} | "
                f"{_number(row['p50_ms'], 2)} | {_number(row['p99_ms'], 2)} | "
                f"{'—' if queries is None else queries} | {'—' if cache is None else cache} | "
                f"{errors} | {ratio_text} | "
                f"{row['note']} |"
            )
        lines.append("")
    crypto = results["crypto_floor"]
    lines += [
        f"## {len(results['groups']) + 1}. Crypto floor",
        "",
        f"PyJWT RS256 ({crypto['key']}) on one core, in-process, an access-token-sized JWT "
        f"({crypto['token_bytes']} bytes): the most a single worker could verify or sign per "
        "second if it did nothing else.",
        "",
        "| operation | per second | µs each |",
        "| --- | ---: | ---: |",
        f"| sign | {_number(crypto['sign']['per_second'])} | "
        f"{_number(crypto['sign']['microseconds'])} |",
        f"| verify | {_number(crypto['verify']['per_second'])} | "
        f"{_number(crypto['verify']['microseconds'])} |",
        "",
    ]
    return "\n".join(lines)


def chart(results: dict[str, Any], path: Path) -> str:
    """A horizontal bar chart of throughput, one panel per group. Returns what was done."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return (
            'chart skipped: matplotlib is not installed (.venv/bin/pip install -e ".[benchmark]")'
        )
    groups = results["groups"]
    heights = [max(1.2, 0.45 * len(group["rows"]) + 0.8) for group in groups]
    figure, axes = plt.subplots(
        len(groups), 1, figsize=(10, sum(heights)), gridspec_kw={"height_ratios": heights}
    )
    colours = {"ours": "#2a7ab0", "peer": "#d98c2b", "floor": "#8c8c8c"}
    for axis, group in zip(axes, groups, strict=True):
        rows = group["rows"][::-1]
        values = [row["throughput"] for row in rows]
        labels = [row["label"].replace("`", "") + (" ⚠" if row["flagged"] else "") for row in rows]
        bars = axis.barh(labels, values, color=[colours[row["side"]] for row in rows])
        for bar, value in zip(bars, values, strict=True):
            axis.text(
                bar.get_width(),
                bar.get_y() + bar.get_height() / 2,
                f" {value:,.1f}",
                va="center",
                fontsize=8,
            )
        axis.set_title(group["title"], fontsize=10, loc="left")
        axis.set_xlim(0, max(values or [1]) * 1.18)
        axis.tick_params(axis="y", labelsize=8)
        axis.tick_params(axis="x", labelsize=8)
    axes[-1].set_xlabel("requests per second (higher is better)")
    info = results["machine"]
    figure.suptitle(
        f"django-tokens vs peers — {info['database']}, {info['cores']} cores, "
        f"{results['date'][:10]}",
        fontsize=11,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return f"chart: {path}"


def main() -> None:
    source = (
        Path(sys.argv[1])
        if len(sys.argv) > 1
        else Path(__file__).parent / "results" / "latest.json"
    )
    results = json.loads(source.read_text())
    target = source.with_suffix(".md")
    target.write_text(markdown(results))
    print(f"written: {target}")
    print(chart(results, source.with_suffix(".png")))


if __name__ == "__main__":
    main()
