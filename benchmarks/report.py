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
        f"mongo_runevents {meta['mongo_runevents']} ({meta['git']}; "
        f"source sha256 {meta.get('source_sha256', '?')}); "
        f"{meta['cpus']} CPUs shared by client and server",
        "",
        "Medians of interleaved rounds. *Ratio* is the median over rounds of the "
        "store's throughput divided by the baseline's in the same round: 1.00 is "
        "parity, 0.50 is half the throughput.",
        "",
        "## Store vs hand-written pymongo",
        "",
        "The raw side sends the store's commands (same filter, sort, limit, batch size "
        "and projection, no hint) with nothing around them. Client CPU: this process's "
        "CPU time (`time.process_time`) per event or call; the server is a separate process.",
        "",
        "| operation | store ms | raw ms | store/raw | client CPU store | client CPU raw "
        "| store throughput |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in results["store_vs_raw"]:
        sides = row["sides"]
        unit = row["unit"]
        lines.append(
            f"| {row['operation']} | {_ms(sides['store']['median_ms'])} | "
            f"{_ms(sides['raw']['median_ms'])} | {_ratio(row['ratios']['store'])} | "
            f"{_cpu_per(sides['store'], unit)} | {_cpu_per(sides['raw'], unit)} | "
            f"{sides['store']['units_per_s']:.0f} {unit}s/s |"
        )
    for row in results["store_vs_raw"]:
        second = row.get("second_baseline")
        if second:
            sides = row["sides"]
            lines += [
                "",
                f"{row['operation']}: {row['note']}. Against `{second}` alone: "
                f"{_ms(sides['store']['median_ms'])} ms against "
                f"{_ms(sides[second]['median_ms'])} ms, store/{second} "
                f"{_ratio(row['store_over_second'])}; raw/{second} "
                f"{_ratio(1 / row['ratios'][second]) if row['ratios'][second] else ''}.",
            ]
        if row.get("explain"):
            lines += ["", f"`explain` (executionStats) of the commands of {row['operation']}:", ""]
            lines += _explain_table(row["explain"], with_size=False)
    lines += _client_cpu(results.get("client_cpu"))
    lines += _indexes(results.get("indexes"))
    lines += _concurrency(results.get("concurrency"))
    lines += _scale(results.get("scale"))
    lines += _cpu(results.get("cpu"))
    lines += _peers(results.get("peers"))
    return "\n".join(lines) + "\n"


def _cpu_per(side: dict[str, Any], unit: str) -> str:
    if unit == "op":
        return f"{_ms(side['client_cpu_ms_per_op'])} ms"
    return f"{side['client_cpu_us_per_unit']:.0f} us/{unit}"


def _explain_table(rows: list[dict[str, Any]], *, with_size: bool, size: str = "") -> list[str]:
    head = "| thread events | query " if with_size else ""
    lines = [
        head + "| command | hint | winning plan | nReturned | keys examined | docs examined | ms |",
        ("| ---: | --- " if with_size else "") + "| --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for explain in rows:
        prefix = f"| {size} | {explain.get('query', '')} " if with_size else ""
        if "error" in explain:
            lines.append(
                prefix + f"| {explain['command']} | | explain failed: {explain['error']} | | | | |"
            )
            continue
        lines.append(
            prefix
            + f"| {explain['command']} | {explain['hint'] or '(none)'} | {explain['plan']} | "
            f"{explain['nReturned']} | {explain['totalKeysExamined']} | "
            f"{explain['totalDocsExamined']} | {explain['executionTimeMillis']} |"
        )
    return lines


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
        "collection. Median ms: the store, the same raw `find`, and that `find` with a "
        "hint naming `thread_category_seq` (what the store's hints did on SecantusDB).",
        "",
        "| thread events | newest: store | raw | hinted | middle: store | raw | hinted "
        "| small thread: store | raw | hinted |",
        "| ---: |" + " ---: |" * 9,
    ]
    for point in section["points"]:
        cells = []
        for query in ("newest", "middle", "neighbour"):
            medians = point[query]["median_ms"]
            cells += [_ms(medians[side]) for side in ("store", "raw", "raw_hinted")]
        lines.append(f"| {point['events']:,} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "`explain` (executionStats) of the same finds, as the store sends them and hinted:",
        "",
    ]
    table = _explain_table([], with_size=True)
    for point in section["points"]:
        for query in ("newest", "middle", "neighbour"):
            rows = [{**explain, "query": query} for explain in point[query]["explain"]]
            table += _explain_table(rows, with_size=True, size=f"{point['events']:,}")[2:]
    lines += table
    if all("blob_lookup" in point for point in section["points"]):
        lines += [
            "",
            "`delete_by_run`'s two commands on the big thread and on the small one: the blob "
            "look-up (`find` of one run's events with out-of-line fields, none here) and a "
            "`delete` of a run the thread does not hold. Median ms, and what `explain` says:",
            "",
            "| thread events | command | big thread ms | small thread ms | plan (explain) "
            "| docs examined (big / small) |",
            "| ---: | --- | ---: | ---: | --- | ---: |",
        ]
        for point in section["points"]:
            for key, command in (
                ("blob_lookup", "find (blob look-up)"),
                ("delete_absent", "delete"),
            ):
                if key not in point:
                    continue
                big, small = point[key]["big"], point[key]["neighbour"]
                lines.append(
                    f"| {point['events']:,} | {command} | {_ms(big['median_ms'])} | "
                    f"{_ms(small['median_ms'])} | {big['explain'].get('plan', '')} | "
                    f"{big['explain'].get('totalDocsExamined')} / "
                    f"{small['explain'].get('totalDocsExamined')} |"
                )
    return lines


def _client_cpu(section: dict[str, Any] | None) -> list[str]:
    if not section:
        return []
    lines = [
        "",
        "## Client CPU per event against the server, store/raw",
        "",
        "`benchmarks.client_cpu`: store and raw in alternating rounds; the ratio is the "
        "median over rounds of the store's CPU per event over raw's in the same round.",
        "",
        "| workload | store us/event | raw us/event | CPU store/raw | throughput store/raw |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, row in section.items():
        lines.append(
            f"| {name} | {row['store_cpu_us']:.1f} | {row['raw_cpu_us']:.1f} | "
            f"{row['cpu_ratio']:.2f} | {row['throughput_ratio']:.2f} |"
        )
    return lines


def _indexes(section: dict[str, Any] | None) -> list[str]:
    if not section:
        return []
    lines = [
        "",
        "## Write cost of each index",
        "",
        "`benchmarks.indexes`: journal batches written by raw pymongo into collections that "
        "differ only in their indexes, and by the store, in alternating rounds. Ratio: "
        "throughput over the mandated set's (unique `(thread_id, seq)` and "
        "`(thread_id, category, seq)`) in the same round.",
        "",
        "| side | events/s | over mandated | client CPU us/event |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, side in section["sides"].items():
        lines.append(
            f"| {name} | {side['events_per_s']:.0f} | {side['over_mandated']:.2f} | "
            f"{side['client_cpu_us_per_event']:.1f} |"
        )
    return lines


def _cpu(section: dict[str, Any] | None) -> list[str]:
    if not section:
        return []
    steps = section["steps"]
    kinds = list(steps)
    lines = [
        "",
        "## Client CPU per event (in process, no server)",
        "",
        "| step | " + " | ".join(f"{kind} (us/event)" for kind in kinds) + " |",
        "| --- |" + " ---: |" * len(kinds),
    ]
    for step in steps[kinds[0]]["us_per_event"]:
        cells = [f"{steps[kind]['us_per_event'][step]:.1f}" for kind in kinds]
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    sizes = ", ".join(f"{kind}: {steps[kind]['mean_bson_bytes']:,.0f}" for kind in kinds)
    lines += ["", f"Mean BSON size per event (bytes): {sizes}."]
    profile = section.get("write_path_profile")
    if profile:
        lines += [
            "",
            f"cProfile of the write path (validation, `prepare`, `Prepared.sent`, `Prepared.finished`; "
            f"{profile['events']} realistic events): {profile['profiled_us_per_event']:.1f} "
            "us/event under the profiler, which inflates many small calls. Top functions "
            "by own time:",
            "",
            "| function | calls/event | own us/event | cumulative us/event |",
            "| --- | ---: | ---: | ---: |",
        ]
        for row in profile["top"]:
            lines.append(
                f"| `{row['function']}` | {row['calls_per_event']:.1f} | "
                f"{row['own_us_per_event']:.1f} | {row['cumulative_us_per_event']:.1f} |"
            )
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
    sides = ("store", "raw", "delete_many")
    height = 0.27
    for k, side in enumerate(sides):
        values = [row["sides"].get(side, {}).get("median_ms", 0) for row in rows]
        label = "delete_many alone" if side == "delete_many" else side
        axis.barh(
            [y + (k - 1) * height for y in range(len(rows))], values, height=height, label=label
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
            for side, style in (("store", "-"), ("raw_hinted", ":")):
                axis.plot(
                    sizes,
                    [point[query]["median_ms"][side] for point in section["points"]],
                    style,
                    marker="o",
                    color=colour,
                    label=f"{query} page, {'store' if side == 'store' else 'hinted find'}",
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
        section = section["steps"]
        kinds = list(section)
        steps = list(section[kinds[0]]["us_per_event"])
        figure, (axis, whole) = plt.subplots(
            2, 1, figsize=(8, 6.5), gridspec_kw={"height_ratios": [len(steps), 2.5]}
        )
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
        axis.set_xlabel("microseconds per event, in process (no server)")
        axis.legend()
        axis.set_title("Client CPU per event")
        batch = results["store_vs_raw"][0]
        values = [batch["sides"][side]["client_cpu_us_per_unit"] for side in ("store", "raw")]
        whole.barh(["put_batch (store)", "raw commands"], values, color=["tab:blue", "tab:gray"])
        whole.invert_yaxis()
        for y, value in enumerate(values):
            whole.text(value, y, f" {value:.0f}", va="center")
        whole.set_xlim(0, max(values) * 1.15)
        whole.set_xlabel("client CPU per event of a whole batch against the server, us")
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
