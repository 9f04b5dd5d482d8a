"""The results of ``benchmarks/run.py`` as Markdown and as a bar chart (matplotlib, optional).

    .venv/bin/python benchmarks/report.py [benchmarks/results/latest.json]

re-renders ``latest.md``, ``latest.png`` and ``latest-scaling.png`` next to a results file,
without measuring again.
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


def of_bound(row: dict[str, Any]) -> str:
    """The row's req/s as a share of what bounds it: "61% floor" or "83% crypto"."""
    bound = row.get("bound")
    if not bound:
        return "—"
    return f"{bound['percent']:.0f}% {bound['limit']}"


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
        f"run took {results['elapsed_seconds']:.0f} s"
        + (
            f" (setup and main rows {results['main_rows_seconds']:.0f} s, scaling sections "
            f"{results['elapsed_seconds'] - results['main_rows_seconds']:.0f} s)"
            if "main_rows_seconds" in results
            else ""
        ),
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
        "has no Redis cache: the peers use none). *of bound*: the row's req/s as a share of "
        "min(the floor row of its server, the crypto floor of its work) — *floor* when "
        "Django, DRF and the middleware alone bound it, *crypto* when its signatures (or "
        "PBKDF2) on min(workers, cores) processes do (the work of each row and both "
        "bounds are in the JSON). A row with errors is flagged ⚠ and its numbers are "
        "not comparable.",
        "",
    ]
    for index, group in enumerate(results["groups"], 1):
        lines += [f"## {index}. {group['title']}", "", group["measures"], ""]
        lines += [
            "| row | req/s | spread | p50 ms | p99 ms | queries/req | Redis/req | errors "
            "| ours ÷ this | of bound | notes |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
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
                f"{errors} | {ratio_text} | {of_bound(row)} | "
                f"{row['note']} |"
            )
        lines.append("")
    crypto = results["crypto_floor"]
    lines += [
        f"## {len(results['groups']) + 1}. Crypto floor",
        "",
        f"PyJWT RS256 ({crypto['key']}) on one core, in-process, an access-token-sized JWT "
        f"({crypto['token_bytes']} bytes): the most a single worker could verify or sign per "
        "second if it did nothing else. The rows' *crypto* bound adds up these costs for "
        "each row's work (e.g. simplejwt's pair: two signatures) on min(workers, cores) "
        "processes; MD5 and SHA-256 hashing (microseconds) is left out.",
        "",
        "| operation | per second | µs each |",
        "| --- | ---: | ---: |",
        f"| sign | {_number(crypto['sign']['per_second'])} | "
        f"{_number(crypto['sign']['microseconds'])} |",
        f"| verify | {_number(crypto['verify']['per_second'])} | "
        f"{_number(crypto['verify']['microseconds'])} |",
    ]
    if "hs256_verify" in crypto:
        lines.append(
            f"| HS256 verify (an API-key assertion) | "
            f"{_number(crypto['hs256_verify']['per_second'])} | "
            f"{_number(crypto['hs256_verify']['microseconds'])} |"
        )
    if "pbkdf2_sha256" in crypto:
        pbkdf2 = crypto["pbkdf2_sha256"]
        lines.append(
            f"| PBKDF2-SHA256, {pbkdf2['iterations']:,} iterations (stock DOT's client "
            f"secret) | {_number(pbkdf2['per_second'], 2)} | {_number(pbkdf2['microseconds'])} |"
        )
    lines.append("")
    lines += scaling_markdown(results, len(results["groups"]) + 2)
    return "\n".join(lines)


def _power(size: int) -> str:
    """10^3-style label of a power of ten, else the number."""
    exponent = len(str(size)) - 1
    return f"10^{exponent}" if size == 10**exponent else f"{size:,}"


def _cell(row: dict[str, Any]) -> str:
    text = _number(row["throughput"])
    bound = row.get("bound")
    if bound:
        text += f" ({bound['percent']:.0f}%)"
    return text + (" ⚠" if row["flagged"] else "")


def scaling_markdown(results: dict[str, Any], number: int) -> list[str]:
    """The scaling sections: workers, database size and the purge (or why they were skipped)."""
    scaling = results.get("scaling")
    if not scaling:
        return []
    if "skipped" in scaling:
        return [f"## {number}. Scaling", "", f"Skipped: {scaling['skipped']}.", ""]
    lines: list[str] = []
    workers = scaling["workers"]
    counts = workers["worker_counts"]
    lines += [
        f"## {number}. Scaling with gunicorn workers",
        "",
        f"Fresh servers (ours and the peer project) with {', '.join(map(str, counts))} sync "
        f"workers each; the same rows as above, {workers['seconds_per_row']:g} s measured per "
        f"row in {workers['blocks_per_row']} interleaved block(s), the same "
        f"{results['machine']['clients']} client processes (section: {workers['seconds']:.0f} "
        "s). Each cell: req/s (share of the row's bound at that worker count, see *of "
        "bound*). With more workers than cores the workers share the cores with each other "
        f"and with the clients: on {results['machine']['cores']} cores, expect no gain past "
        f"{results['machine']['cores']} workers.",
        "",
    ]
    first_groups = workers["points"][0]["groups"]
    for group_index, group in enumerate(first_groups):
        header = " | ".join(f"{n} worker{'s' if n > 1 else ''}" for n in counts)
        lines += [
            f"**{group['title']}**",
            "",
            f"| row | {header} | {counts[-1]} ÷ {counts[0]} |",
            "| --- |" + " ---: |" * (len(counts) + 1),
        ]
        by_count = [point["groups"][group_index]["rows"] for point in workers["points"]]
        for row_index, row in enumerate(group["rows"]):
            cells = [rows[row_index] for rows in by_count]
            growth = (
                cells[-1]["throughput"] / cells[0]["throughput"] if cells[0]["throughput"] else None
            )
            lines.append(
                f"| {_row_label(row)} | {' | '.join(_cell(cell) for cell in cells)} | "
                f"{_number(growth, 2)} |"
            )
        for row_index, row in enumerate(group["rows"]):
            if row["side"] != "peer":
                continue
            ratios = [rows[row_index]["ours_over_this"] for rows in by_count]
            lines.append(
                f"| *ours ÷ {row['label']}* | {' | '.join(_number(r, 2) for r in ratios)} | |"
            )
        lines.append("")
    lines += _size_markdown(scaling.get("database_size"), number + 1)
    return lines


def _size_markdown(size: dict[str, Any] | None, number: int) -> list[str]:
    if not size:
        return []
    if "skipped" in size:
        return [f"## {number}. Database size", "", f"Skipped: it {size['skipped']}.", ""]
    points = size["points"]
    smallest = _power(points[0]["sessions"])
    lines = [
        f"## {number}. Database size: issuance and refresh with {smallest} to "
        f"{_power(points[-1]['sessions'])} stored sessions",
        "",
        "Before each point the session table is filled up to the number of stored sessions "
        "(bulk SQL, `benchmarks/scale_data.py`): each filler session has its refresh token and "
        "the audit entry of its issuance and belongs to one of 10,000 filler users; half are "
        "live, half have expired and wait for the purge, interleaved (issuance and refresh "
        "never read another session's rows: only the tables' and indexes' size reaches "
        "them). The points add their own rows as they run. One ours server "
        f"({size['gunicorn_workers']} workers), {size['seconds_per_row']:g} s per row in "
        f"{size['blocks_per_row']} interleaved block(s) (section, with the fills and the "
        f"purge: {size['seconds']:.0f} s). *÷ {smallest}*: req/s over the same row's at "
        f"{smallest} (target for issuance: within 20 %, i.e. at least 0.80).",
        "",
        f"| stored sessions | fill | issuance req/s | p99 ms | ÷ {smallest} | refresh req/s "
        f"| p99 ms | ÷ {smallest} |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for point in points:
        rows = {row["variant"]: row for row in point["rows"]}
        issuance, refresh = rows["issuance"], rows["refresh"]
        fill = point["fill"]
        fill_text = f"+{fill['added']:,} in {fill['seconds']:.0f} s" if fill["added"] else "—"
        lines.append(
            f"| {point['fill']['counts']['session']:,} | {fill_text} | "
            f"{_cell(issuance)} | {_number(issuance['p99_ms'], 2)} | "
            f"{_number(issuance.get('over_smallest'), 2)} | {_cell(refresh)} | "
            f"{_number(refresh['p99_ms'], 2)} | {_number(refresh.get('over_smallest'), 2)} |"
        )
    last = {row["variant"]: row for row in points[-1]["rows"]}["issuance"]
    verdict = last.get("over_smallest")
    if verdict is not None:
        met = "met" if verdict >= 0.8 else "**not met**"
        lines += [
            "",
            f"Issuance at {_power(points[-1]['sessions'])} ÷ at {smallest}: "
            f"{verdict:.2f} — target (within 20 %) {met}.",
        ]
    lines.append("")
    lines += _purge_markdown(size["purge"], number + 1)
    return lines


def _purge_markdown(purge: dict[str, Any], number: int) -> list[str]:
    before, during = purge["load_before"], purge["load_during"]
    steps = ", ".join(
        f"{step['step']} {step['count']:,} (done at {step['at_seconds']:.1f} s)"
        for step in purge["steps"]
    )
    rate = purge["rows_removed"] / purge["seconds"] if purge["seconds"] else 0
    status = "" if purge["returncode"] == 0 else f" ⚠ exit status {purge['returncode']}"
    if purge.get("timed_out"):
        status += " (stopped: over the time limit)"
    lines = [
        f"## {number}. `purge_tokens` while issuance runs",
        "",
        "With the largest filler in place (its expired half: sessions and their refresh "
        "tokens), the clients keep `POST /api/token` going (closed loop, as above); "
        "`manage.py purge_tokens` (ours' settings and database, batches of 5000) starts a "
        "second into the load and the load goes on a second past its end. "
        "*Before*: the same load just before, with nothing else running. *Longest gap*: the "
        "longest time in which no issuance completed — a stall shows there. The purge "
        "competes with the servers for the same cores.",
        "",
        f"- **Purge**: {purge['seconds']:.1f} s wall time (the command, with Django's start-up)"
        f", {purge['rows_removed']:,} rows removed ({rate:,.0f} rows/s){status}",
        f"- **Steps**: {steps}",
        "",
        "| issuance | before | during the purge |",
        "| --- | ---: | ---: |",
        f"| seconds measured | {before['seconds']:.1f} | {during['seconds']:.1f} |",
        f"| req/s | {_number(before['throughput'])} | {_number(during['throughput'])} |",
        f"| p50 ms | {_number(before['p50_ms'], 2)} | {_number(during['p50_ms'], 2)} |",
        f"| p99 ms | {_number(before['p99_ms'], 2)} | {_number(during['p99_ms'], 2)} |",
        f"| max ms | {_number(before['max_ms'], 2)} | {_number(during['max_ms'], 2)} |",
        f"| longest gap ms | {_number(before['longest_gap_ms'])} | "
        f"{_number(during['longest_gap_ms'])} |",
        f"| errors | {before['errors']} | {during['errors']} |",
        "",
    ]
    waits = purge.get("lock_waits")
    if waits:
        lines += [
            f"**Lock waits** during the purge (`pg_stat_activity` sampled every "
            f"{waits['interval_seconds']:g} s): a backend was waiting for a lock in "
            f"{waits['samples_with_a_wait']} of {waits['samples']} samples"
            + (f" (at most {waits['most_waiting']} at once)" if waits["most_waiting"] else "")
            + ".",
            "",
        ]
    lines += [
        f"Throughput during ÷ before: {_number(purge['throughput_during_over_before'], 2)}. "
        "`timeline` in the JSON has the load second by second.",
        "",
    ]
    return lines


def scaling_flagged(scaling: dict[str, Any] | None) -> list[str]:
    """The scaling rows (and the purge) that saw errors."""
    flagged: list[str] = []
    if not scaling or "skipped" in scaling:
        return flagged
    for point in scaling["workers"]["points"]:
        for group in point["groups"]:
            flagged += [
                f"workers-{point['workers']}/{row['id']}" for row in group["rows"] if row["flagged"]
            ]
    size = scaling.get("database_size") or {}
    if "points" in size:
        for point in size["points"]:
            flagged += [
                f"size-{point['sessions']}/{row['variant']}"
                for row in point["rows"]
                if row["flagged"]
            ]
        if size["purge"]["flagged"]:
            flagged.append("purge")
    return flagged


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


def scaling_chart(results: dict[str, Any], path: Path) -> str:
    """Line charts of the scaling sections: req/s by worker count, by database size, and the
    issuance load second by second around the purge. Returns what was done."""
    scaling = results.get("scaling") or {}
    if not scaling or "skipped" in scaling:
        path.unlink(missing_ok=True)  # no stale chart next to new results
        return "scaling chart skipped: no scaling sections in this run"
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return (
            "scaling chart skipped: matplotlib is not installed "
            '(.venv/bin/pip install -e ".[benchmark]")'
        )
    size = scaling.get("database_size") or {}
    panels = 2 + (2 if "points" in size else 0)
    figure, axes = plt.subplots(panels, 1, figsize=(10, 3.2 * panels))
    colours = {"ours": "#2a7ab0", "peer": "#d98c2b", "floor": "#8c8c8c"}
    workers = scaling["workers"]
    counts = workers["worker_counts"]
    for index, axis in enumerate(axes[:2]):
        rows = workers["points"][0]["groups"][index]["rows"]
        for row_index, row in enumerate(rows):
            values = [
                point["groups"][index]["rows"][row_index]["throughput"]
                for point in workers["points"]
            ]
            style = "--" if row["side"] == "floor" else "-"
            axis.plot(
                counts,
                values,
                style,
                marker="o",
                color=colours[row["side"]],
                alpha=1.0 if row_index % 2 == 0 else 0.6,
                label=row["label"].replace("`", ""),
            )
        axis.set_xticks(counts)
        axis.set_xlabel("gunicorn workers per server", fontsize=8)
        axis.set_ylabel("req/s", fontsize=8)
        axis.set_ylim(bottom=0)
        axis.set_title(workers["points"][0]["groups"][index]["title"], fontsize=10, loc="left")
        axis.legend(fontsize=7, loc="best")
        axis.tick_params(labelsize=8)
    if "points" in size:
        axis = axes[2]
        sessions = [point["fill"]["counts"]["session"] for point in size["points"]]
        for variant, colour in (("issuance", "#2a7ab0"), ("refresh", "#5aa05a")):
            values = [
                next(row["throughput"] for row in point["rows"] if row["variant"] == variant)
                for point in size["points"]
            ]
            axis.plot(sessions, values, marker="o", color=colour, label=f"ours: {variant}")
        axis.set_xscale("log")
        axis.set_ylim(bottom=0)
        axis.set_xlabel("stored sessions (each with its refresh token and audit entry)", fontsize=8)
        axis.set_ylabel("req/s", fontsize=8)
        axis.set_title("Database size", fontsize=10, loc="left")
        axis.legend(fontsize=7)
        axis.tick_params(labelsize=8)
        purge = size["purge"]
        axis = axes[3]
        times = [second["t"] for second in purge["timeline"]]
        axis.step(
            times,
            [second["throughput"] for second in purge["timeline"]],
            where="post",
            color="#2a7ab0",
            label="issuance req/s (1-s windows)",
        )
        axis.axvspan(0, purge["seconds"], color="#d98c2b", alpha=0.15, label="purge_tokens runs")
        axis.axhline(
            purge["load_before"]["throughput"], color="#8c8c8c", linestyle="--", label="before"
        )
        axis.set_ylim(bottom=0)
        axis.set_xlabel("seconds since purge_tokens started", fontsize=8)
        axis.set_ylabel("req/s", fontsize=8)
        axis.set_title(
            f"Issuance while purge_tokens removes {purge['rows_removed']:,} rows",
            fontsize=10,
            loc="left",
        )
        axis.legend(fontsize=7, loc="lower right")
        axis.tick_params(labelsize=8)
    info = results["machine"]
    figure.suptitle(
        f"django-tokens scaling — {info['database']}, {info['cores']} cores, "
        f"{results['date'][:10]}",
        fontsize=11,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return f"scaling chart: {path}"


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
    print(scaling_chart(results, source.with_name(source.stem + "-scaling.png")))


if __name__ == "__main__":
    main()
