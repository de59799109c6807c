"""Results to files: ``results.json``, ``results.md`` and PNG plots (matplotlib)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _ms(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def markdown(results: dict[str, Any]) -> str:
    """The results as Markdown tables."""
    meta = results["meta"]
    lines = [
        "# Benchmark results",
        "",
        f"- run: `{meta['command']}` ({'quick' if meta['quick'] else 'full'}), "
        f"{meta['started_at']}, {meta['seconds']:.0f} s",
        f"- server: {meta['server']}; writes in transactions: {meta['transactions']}",
        f"- client: Python {meta['python']}, pymongo {meta['pymongo']}, "
        f"mongo_runevents {meta['mongo_runevents']} ({meta['git']}); "
        f"{meta['cpus']} CPUs shared by client and server",
        "",
        "Medians of interleaved rounds. *Ratio* is the median over rounds of the "
        "store's throughput divided by the baseline's in the same round: 1.00 is "
        "parity, 0.50 is half the throughput.",
        "",
        "## Store vs hand-written pymongo",
        "",
        "| operation | store ms | raw ms | raw no-hint ms | store/raw | raw no-hint/raw | store throughput |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in results["store_vs_raw"]:
        sides = row["sides"]
        no_hint = sides.get("raw_no_hint")
        lines.append(
            f"| {row['operation']} | {_ms(sides['store']['median_ms'])} | "
            f"{_ms(sides['raw']['median_ms'])} | "
            f"{_ms(no_hint['median_ms']) if no_hint else ''} | "
            f"{_ratio(row['ratios']['store'])} | {_ratio(row['ratios'].get('raw_no_hint'))} | "
            f"{sides['store']['units_per_s']:.0f} {row['unit']}s/s |"
        )
    lines += _concurrency(results.get("concurrency"))
    lines += _scale(results.get("scale"))
    lines += _cpu(results.get("cpu"))
    lines += _peers(results.get("peers"))
    return "\n".join(lines) + "\n"


def _concurrency(section: dict[str, Any] | None) -> list[str]:
    if not section:
        return []
    modes = section["modes"]
    lines = [
        "",
        "## Concurrent writers",
        "",
        f"Each writer: its own client and store, {section['per_writer_batches']} realistic "
        "batches of 20. Events/s over the wall time; aborts are transactions the "
        "server aborted (and the store retried).",
        "",
        "| writers | " + " | ".join(f"{mode}: events/s | aborts" for mode in modes) + " |",
        "| ---: |" + " ---: | ---: |" * len(modes),
    ]
    for index, row in enumerate(next(iter(modes.values()))):
        cells = []
        for rows in modes.values():
            cells += [f"{rows[index]['events_per_s']:.0f}", str(rows[index]["aborts"])]
        lines.append(f"| {row['writers']} | " + " | ".join(cells) + " |")
    failures = {
        f"{mode}, {row['writers']} writers": row["failed"]
        for mode, rows in modes.items()
        for row in rows
        if row["failed"]
    }
    if failures:
        lines += ["", "Commands the server refused (the store retried them):", ""]
        lines += [f"- {where}: {failed}" for where, failed in failures.items()]
    errors = {
        f"{mode}, {row['writers']} writers": row["errors"]
        for mode, rows in modes.items()
        for row in rows
        if row.get("errors")
    }
    if errors:
        lines += ["", "Writes that failed (the error reached the caller):", ""]
        lines += [f"- {where}: {error}" for where, error in errors.items()]
    gaps = [
        f"{row['writers']} writers"
        for rows in modes.values()
        for row in rows
        if row.get("gap_free") is False
    ]
    lines += [
        "",
        "One thread, seqs 1..n without a gap after every run: "
        + ("yes" if not gaps else f"no ({', '.join(gaps)})")
        + ".",
    ]
    return lines


def _scale(section: dict[str, Any] | None) -> list[str]:
    if not section:
        return []
    lines = [
        "",
        "## Reads as a thread grows",
        "",
        f"Newest page of {section['page']} messages, a `before_seq` page from the middle, "
        f"and the newest page of a {section['neighbour_events']}-event thread in the same "
        "collection. Median ms.",
        "",
        "| thread events | newest: store | raw | no hint | middle: store | raw | no hint "
        "| small thread: store | raw | no hint |",
        "| ---: |" + " ---: |" * 9,
    ]
    for point in section["points"]:
        cells = []
        for query in ("newest", "middle", "neighbour"):
            medians = point[query]["median_ms"]
            cells += [_ms(medians[side]) for side in ("store", "raw", "raw_no_hint")]
        lines.append(f"| {point['events']:,} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "`explain` (executionStats) of the same finds, with the store's hint and without:",
        "",
        "| thread events | query | hint | winning plan | nReturned | keys examined "
        "| docs examined | ms |",
        "| ---: | --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for point in section["points"]:
        for query in ("newest", "middle", "neighbour"):
            for explain in point[query]["explain"]:
                lines.append(
                    f"| {point['events']:,} | {query} | {explain['hint'] or '(none)'} | "
                    f"{explain['plan']} | {explain['nReturned']} | "
                    f"{explain['totalKeysExamined']} | {explain['totalDocsExamined']} | "
                    f"{explain['executionTimeMillis']} |"
                )
    return lines


def _cpu(section: dict[str, Any] | None) -> list[str]:
    if not section:
        return []
    kinds = list(section)
    lines = [
        "",
        "## Client CPU per event (no server)",
        "",
        "| step | " + " | ".join(f"{kind} (us/event)" for kind in kinds) + " |",
        "| --- |" + " ---: |" * len(kinds),
    ]
    for step in section[kinds[0]]["us_per_event"]:
        cells = [f"{section[kind]['us_per_event'][step]:.1f}" for kind in kinds]
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    sizes = ", ".join(f"{kind}: {section[kind]['mean_bson_bytes']:,.0f}" for kind in kinds)
    lines += ["", f"Mean BSON size per event (bytes): {sizes}."]
    return lines


def _peers(section: dict[str, Any] | None) -> list[str]:
    if not section:
        return []
    lines = ["", "## Peers on the same server", ""]
    for name, peer in section.get("peers", {}).items():
        lines.append(f"- {name}: {peer['package']}, `{peer['class']}`, {peer['driver']}")
    for name, reason in section.get("skipped", {}).items():
        lines.append(f"- {name}: skipped, {reason}")
    rows = section.get("rows", [])
    if rows:
        names = [name for name in rows[0]["sides"] if name != "store"]
        lines += [
            "",
            "Median ms per call, and the store's throughput over the peer's (>1: store faster).",
            "",
            "| operation | store ms | "
            + " | ".join(f"{name} ms | store/{name}" for name in names)
            + " |",
            "| --- | ---: |" + " ---: | ---: |" * len(names),
        ]
        for row in rows:
            cells = [_ms(row["sides"]["store"]["median_ms"])]
            for name in names:
                cells += [_ms(row["sides"][name]["median_ms"]), _ratio(row["store_over"][name])]
            lines.append(f"| {row['operation']} | " + " | ".join(cells) + " |")
    return lines


def plots(results: dict[str, Any], out: Path) -> list[str]:
    """Draw the PNG plots into ``out``; return their file names (none without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plots (pip install matplotlib)", file=sys.stderr)
        return []
    written = []

    def save(figure: Any, name: str) -> None:
        figure.tight_layout()
        figure.savefig(out / name, dpi=110)
        plt.close(figure)
        written.append(name)

    rows = results["store_vs_raw"]
    labels = [row["operation"] for row in rows]
    figure, axis = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.5))
    ratios = [row["ratios"]["store"] for row in rows]
    axis.barh(labels, ratios, color=["tab:green" if r >= 0.9 else "tab:orange" for r in ratios])
    axis.axvline(1.0, color="black", linewidth=1)
    axis.set_xlim(0, max([1.0, *ratios]) * 1.15)
    axis.invert_yaxis()
    axis.set_xlabel("store / raw throughput (median of paired rounds)")
    axis.set_title("Store vs hand-written pymongo")
    for y, ratio in enumerate(ratios):
        axis.text(ratio, y, f" {ratio:.2f}", va="center")
    save(figure, "ratios.png")

    figure, axis = plt.subplots(figsize=(9, 0.6 * len(rows) + 1.5))
    sides = ("store", "raw", "raw_no_hint")
    height = 0.27
    for k, side in enumerate(sides):
        values = [row["sides"].get(side, {}).get("median_ms", 0) for row in rows]
        axis.barh(
            [y + (k - 1) * height for y in range(len(rows))], values, height=height, label=side
        )
    axis.set_yticks(range(len(rows)), labels)
    axis.invert_yaxis()
    axis.set_xscale("log")
    axis.set_xlabel("median latency per call, ms (log)")
    axis.legend()
    save(figure, "latency.png")

    section = results.get("concurrency")
    if section:
        figure, axis = plt.subplots(figsize=(7, 4))
        for mode, mode_rows in section["modes"].items():
            axis.plot(
                [row["writers"] for row in mode_rows],
                [row["events_per_s"] for row in mode_rows],
                marker="o",
                label=mode,
            )
        axis.set_xscale("log", base=2)
        axis.set_xticks([1, 2, 4, 8], ["1", "2", "4", "8"])
        axis.set_xlabel("concurrent writers (separate clients)")
        axis.set_ylabel("events/s (realistic events)")
        axis.set_ylim(bottom=0)
        axis.legend()
        axis.set_title("Concurrent put_batch writers")
        save(figure, "concurrency.png")

    section = results.get("scale")
    if section:
        figure, axis = plt.subplots(figsize=(7, 4.5))
        sizes = [point["events"] for point in section["points"]]
        for query, colour in (
            ("newest", "tab:blue"),
            ("middle", "tab:green"),
            ("neighbour", "tab:red"),
        ):
            for side, style in (("store", "-"), ("raw_no_hint", ":")):
                axis.plot(
                    sizes,
                    [point[query]["median_ms"][side] for point in section["points"]],
                    style,
                    marker="o",
                    color=colour,
                    label=f"{query} page, {'store (hinted)' if side == 'store' else 'no hint'}",
                )
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("events in the big thread")
        axis.set_ylabel("median ms per page of 50 (log)")
        axis.legend(fontsize=8)
        axis.set_title("Read latency as a thread grows")
        save(figure, "scale.png")

    section = results.get("cpu")
    if section:
        kinds = list(section)
        steps = list(section[kinds[0]]["us_per_event"])
        figure, axis = plt.subplots(figsize=(8, 4))
        height = 0.8 / len(kinds)
        for k, kind in enumerate(kinds):
            axis.barh(
                [y + k * height for y in range(len(steps))],
                [section[kind]["us_per_event"][step] for step in steps],
                height=height,
                label=kind,
            )
        axis.set_yticks([y + height / 2 for y in range(len(steps))], steps)
        axis.invert_yaxis()
        axis.set_xlabel("microseconds per event")
        axis.legend()
        axis.set_title("Client CPU per event")
        save(figure, "cpu.png")

    section = results.get("peers")
    if section and section.get("rows"):
        rows = section["rows"]
        names = list(rows[0]["sides"])
        figure, axes = plt.subplots(1, len(rows), figsize=(4 * len(rows) + 1, 3.5))
        for axis, row in zip(axes, rows, strict=True):
            values = [row["sides"][name]["median_ms"] for name in names]
            axis.bar(names, values, color=["tab:blue", "tab:gray", "tab:olive"][: len(names)])
            axis.set_title(row["operation"])
            axis.set_ylabel("median ms per call")
        save(figure, "peers.png")
    return written


def write(results: dict[str, Any], out: Path) -> None:
    """Write ``results.json``, ``results.md`` and the plots into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    results["meta"]["plots"] = plots(results, out)
    (out / "results.json").write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
    (out / "results.md").write_text(markdown(results))
