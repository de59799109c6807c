"""Import never loses an event, on every backend: already there, conflicts, renumbering, skip, stop, dry run."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from mongo_runevents import InvalidEventError, RunEventStore
from mongo_runevents.errors import ImportConflictError
from mongo_runevents.formats import SourcePosition
from mongo_runevents.importing import ImportResult, Renumbered, order_key, time_key
from mongo_runevents.source_import import LocatedConflict, import_source
from mongo_runevents.verify import verify_threads
from tests.factories import event


def record(seq: int, run: str = "run-a", second: int = 0, **fields: Any) -> dict[str, Any]:
    """An exported record of thread-1 with ``seq``, written at 12:00:``second``."""
    return {
        **event(run_id=run, content=f"{run} #{seq}"),
        "seq": seq,
        "created_at": f"2025-07-01T12:00:{second:02d}+00:00",
        **fields,
    }


def two_writers() -> list[dict[str, Any]]:
    """Two processes that each numbered thread-1 from 1 to 3 (DeerFlow's JSONL store, two writers)."""
    a = [record(n, "run-a", second=2 * n) for n in (1, 2, 3)]
    b = [record(n, "run-b", second=2 * n + 1) for n in (1, 2, 3)]
    return a + b


async def stored(store: RunEventStore, thread_id: str = "thread-1") -> list[tuple[int, Any]]:
    """(seq, content) of every event of the thread, in seq order."""
    return [(r["seq"], r["content"]) async for r in store.export_events(thread_id)]


def summary(result: ImportResult) -> tuple[int, int, int, int]:
    """(inserted, already there, conflicts, skipped)."""
    return result.inserted, result.already_there, len(result.conflicts), len(result.skipped)


async def test_two_writers_on_one_thread_are_both_kept_renumbered_in_a_stable_order(
    store: RunEventStore,
) -> None:
    """Colliding seqs are renumbered (seq, created_at, position) and the old-to-new mapping is reported."""
    result = await store.import_events(two_writers())
    assert summary(result) == (6, 0, 3, 0)
    assert await stored(store) == [
        (1, "run-a #1"),
        (2, "run-b #1"),
        (3, "run-a #2"),
        (4, "run-b #2"),
        (5, "run-a #3"),
        (6, "run-b #3"),
    ]
    assert [(c.index, c.seq) for c in result.conflicts] == [(3, 1), (4, 2), (5, 3)]
    assert result.conflicts[0].reason == "record 0 of the input has seq 1 too"
    assert result.renumbered == [
        Renumbered(3, "thread-1", 1, 2),
        Renumbered(1, "thread-1", 2, 3),
        Renumbered(4, "thread-1", 2, 4),
        Renumbered(2, "thread-1", 3, 5),
        Renumbered(5, "thread-1", 3, 6),
    ]
    assert (await store.put(**event()))["seq"] == 7


async def test_rerunning_a_renumbered_import_finds_everything_already_there(
    store: RunEventStore,
) -> None:
    """A second run of the same import (even records far from their new seqs) writes nothing."""
    records = [*two_writers(), record(100, "run-a", second=59)]
    first = await store.import_events(records)
    assert first.inserted == 7
    assert (await stored(store))[-1] == (7, "run-a #100")

    again = await store.import_events(list(reversed(records)))
    assert summary(again) == (0, 7, 0, 0)
    assert again.renumbered == []
    assert len(await stored(store)) == 7


async def test_an_import_into_a_thread_with_events_follows_them_in_its_own_order(
    store: RunEventStore,
) -> None:
    """A colliding imported thread is numbered after the events there, which stay untouched."""
    await store.put_batch([event(content="live 1"), event(content="live 2")])
    result = await store.import_events([record(1), record(2), record(3)])
    assert summary(result) == (3, 0, 2, 0)
    assert [c.reason for c in result.conflicts] == [f"seq {n} holds another event" for n in (1, 2)]
    assert await stored(store) == [
        (1, "live 1"),
        (2, "live 2"),
        (3, "run-a #1"),
        (4, "run-a #2"),
        (5, "run-a #3"),
    ]


async def test_records_without_conflicts_keep_their_seqs(store: RunEventStore) -> None:
    """Threads without a collision keep their seqs, gaps included; later writes follow the highest."""
    result = await store.import_events([record(2), record(5), {**record(1), "thread_id": "t-2"}])
    assert summary(result) == (3, 0, 0, 0)
    assert [seq for seq, _ in await stored(store)] == [2, 5]
    assert (await store.put(**event()))["seq"] == 6


async def test_the_same_event_is_compared_exactly(store: RunEventStore) -> None:
    """Content that is only equal in Python ({'a': 1} and {'a': True}) is another event: a conflict."""
    await store.import_events([record(1, content={"a": 1})])
    result = await store.import_events([record(1, content={"a": True})])
    assert summary(result) == (1, 0, 1, 0)
    assert [content for _, content in await stored(store)] == [{"a": 1}, {"a": True}]
    same = await store.import_events([record(1, content={"a": 1})])
    assert summary(same) == (0, 1, 0, 0)


@pytest.mark.parametrize(
    "change",
    [
        {"run_id": "run-z"},
        {"event_type": "llm.other"},
        {"category": "trace"},
        {"metadata": {"k": 1}},
        {"user_id": "alice"},
        {"created_at": "2025-07-01T12:00:00.5+00:00"},
    ],
)
async def test_any_field_that_differs_makes_another_event(
    store: RunEventStore, change: dict[str, Any]
) -> None:
    """Run, type, category, metadata, user and time all belong to what makes an event the same."""
    await store.import_events([record(1)])
    result = await store.import_events([{**record(1), **change}])
    assert summary(result) == (1, 0, 1, 0)


async def test_a_record_repeated_at_its_own_seq_is_stored_once(store: RunEventStore) -> None:
    """The very record twice in one input (same seq) is stored once; equal fields at seq 9 are another event."""
    result = await store.import_events([record(1), record(1), record(9, content="run-a #1")])
    assert summary(result) == (2, 1, 0, 0)
    assert await stored(store) == [(1, "run-a #1"), (9, "run-a #1")]


async def test_equal_events_at_different_seqs_are_all_kept_and_exported_again_equal(
    store: RunEventStore,
) -> None:
    """A message repeated three times (same content and time, seqs 1-3) survives an export and an import."""
    same = {"created_at": "2025-07-01T12:00:00+00:00", "content": "again"}
    await store.put_batch([event(**same) for _ in range(3)])
    exported = [item async for item in store.export_events("thread-1")]
    await store.delete_by_thread("thread-1")  # the thread moves in afresh
    result = await store.import_events(exported)
    assert summary(result) == (3, 0, 0, 0)
    assert await store.list_messages("thread-1") == exported
    again = await store.import_events(exported)
    assert summary(again) == (0, 3, 0, 0)


async def test_skip_stores_what_does_not_collide_and_reports_the_rest(store: RunEventStore) -> None:
    """on_conflict='skip' keeps the first record of each seq (in the stable order) and skips others."""
    result = await store.import_events(two_writers(), on_conflict="skip")
    assert summary(result) == (3, 0, 3, 3)
    assert [(c.index, c.seq) for c in result.skipped] == [(3, 1), (4, 2), (5, 3)]
    assert [content for _, content in await stored(store)] == ["run-a #1", "run-a #2", "run-a #3"]


async def test_stop_raises_before_writing_anything(store: RunEventStore) -> None:
    """on_conflict='stop' raises ImportConflictError listing the conflicts; nothing is written."""
    with pytest.raises(ImportConflictError, match="3 records collide") as raised:
        await store.import_events([record(7, "run-c"), *two_writers()], on_conflict="stop")
    assert [c.index for c in raised.value.conflicts] == [4, 5, 6]
    assert await stored(store) == []
    assert (await store.put(**event()))["seq"] == 1


async def test_a_dry_run_reports_the_renumbering_and_writes_nothing(store: RunEventStore) -> None:
    """dry_run=True returns what the import would do, seqs included, and leaves the store alone."""
    await store.put(**event(content="live"))
    planned = await store.import_events(two_writers(), dry_run=True)
    assert planned.dry_run is True
    assert summary(planned) == (6, 0, 4, 0)
    assert [r.new_seq for r in planned.renumbered] == [2, 3, 4, 5, 6, 7]
    assert await stored(store) == [(1, "live")]
    done = await store.import_events(two_writers())
    assert done.renumbered == planned.renumbered


async def test_an_event_id_held_by_another_event_is_skipped_even_when_renumbering(
    store: RunEventStore,
) -> None:
    """Renumbering cannot resolve a reused event_id: that record is skipped and reported."""
    await store.put(**event(event_id="e-1", content="first"))
    result = await store.import_events([record(5, event_id="e-1"), record(6)])
    assert summary(result) == (1, 0, 1, 1)
    assert "event_id 'e-1' is held by another event (seq 1)" in result.skipped[0].reason
    assert [seq for seq, _ in await stored(store)] == [1, 6]


async def test_import_arguments_are_checked(store: RunEventStore) -> None:
    """A bad on_conflict, dry_run or records argument is an InvalidEventError; nothing is written."""
    with pytest.raises(InvalidEventError, match="on_conflict"):
        await store.import_events([record(1)], on_conflict="merge")  # type: ignore[arg-type]
    with pytest.raises(InvalidEventError, match="dry_run"):
        await store.import_events([record(1)], dry_run="yes")  # type: ignore[arg-type]
    with pytest.raises(InvalidEventError, match="records"):
        await store.import_events(None)  # type: ignore[arg-type]
    assert await stored(store) == []


def test_the_stable_order_reads_times_in_any_iso_form() -> None:
    """Offsets, fractions and spaces are read as times; the order is seq, time, then position."""
    assert time_key("2025-07-01T12:00:00+02:00")[0] < time_key("2025-07-01 11:00:00Z")[0]
    assert time_key("2025-07-01T10:00:00.5")[0] == time_key("2025-07-01T10:00:00,500000Z")[0]
    assert time_key("2025-07-01")[0] < time_key("2025-07-01T00:00:00.000001")[0]
    assert time_key("not a time")[0] > time_key("9999-12-31T23:59:59")[0]
    assert order_key(1, "2025-07-02", 0) < order_key(2, "2025-07-01", 0)
    assert order_key(1, "2025-07-01", 5) < order_key(1, "2025-07-02", 0)


async def test_seqs_taken_between_the_look_up_and_the_write_move_the_import_after_them(
    store: RunEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A live writer that took the imported seqs after the look-up: the records follow its event."""

    async def sees_nothing(lookups: Any) -> dict[str, Any]:
        return {}

    await store.put(**event(content="live"))
    monkeypatch.setattr(store, "_import_lookup", sees_nothing)
    result = await store.import_events([record(1), record(2)])
    assert summary(result) == (2, 0, 0, 0)
    assert [(r.old_seq, r.new_seq) for r in result.renumbered] == [(1, 2), (2, 3)]
    assert await stored(store) == [(1, "live"), (2, "run-a #1"), (3, "run-a #2")]
    monkeypatch.undo()
    again = await store.import_events([record(1), record(2)])
    assert summary(again) == (0, 2, 0, 0)


async def test_a_thread_reset_forgets_that_an_import_renumbered_it(store: RunEventStore) -> None:
    """After delete_by_thread, a record is looked for at its own seq only, as in any new thread."""
    await store.import_events(two_writers())
    await store.delete_by_thread("thread-1")
    await store.put(**{k: v for k, v in record(1).items() if k != "seq"})
    result = await store.import_events([record(5, content="run-a #1")])
    assert summary(result) == (1, 0, 0, 0)
    assert [seq for seq, _ in await stored(store)] == [1, 5]


async def test_a_reader_following_the_thread_sees_every_imported_record(
    store: RunEventStore,
) -> None:
    """An import while a live writer appends: an after_seq poller skips no event, imported or live."""
    thread_records = [record(n, second=n % 60) for n in range(1, 1201)]
    seen: list[int] = []
    done = asyncio.Event()

    async def live_writer() -> None:
        for n in range(40):
            await store.put_batch([event(run_id="live", content=f"live {n}")])
            await asyncio.sleep(0)

    async def poller() -> None:
        after = 0
        while True:
            finished = done.is_set()
            page = await store.read_after("thread-1", after)
            seen.extend(row["seq"] for row in page)
            if page:
                after = page[-1]["seq"]
            elif finished:
                return
            await asyncio.sleep(0)

    polling = asyncio.create_task(poller())
    result, _ = await asyncio.gather(store.import_events(thread_records), live_writer())
    done.set()
    await polling
    assert result.inserted == 1200
    everything = [seq for seq, _ in await stored(store)]
    assert len(everything) == 1240
    assert seen == everything


async def test_a_seq_the_thread_could_not_continue_after_is_refused(store: RunEventStore) -> None:
    """A seq past 2**53-1 is refused with nothing written; later writes to the thread still work."""
    for seq in (2**63 - 1, 2**53):
        with pytest.raises(InvalidEventError, match="seq"):
            await store.import_events([record(1), record(seq)])
    assert await stored(store) == []
    await store.import_events([record(2**53 - 1)])
    written = await store.put(**event(content="next"))
    assert written["seq"] == 2**53


@pytest.mark.parametrize(
    "created_at", ["0001-01-01T00:00+01:00", "9999-12-31T23:59:60Z", "9999-12-31T22:00-02:00"]
)
async def test_a_time_outside_the_years_1_to_9999_in_utc_is_refused_at_the_door(
    store: RunEventStore, created_at: str
) -> None:
    """put and import refuse a created_at that no reader could turn into a date."""
    with pytest.raises(InvalidEventError, match="outside the years 1 to 9999"):
        await store.put(**event(created_at=created_at))
    with pytest.raises(InvalidEventError, match="outside the years 1 to 9999"):
        await store.import_events([record(1, created_at=created_at)])
    assert await stored(store) == []


async def test_repeated_events_renumbered_are_each_found_by_their_source_seq(
    store: RunEventStore,
) -> None:
    """Three equal records renumbered after live events: a rerun finds each; one deleted comes back alone."""
    same = {"content": "again", "created_at": "2025-07-01T12:00:00+00:00"}
    await store.put_batch([event(run_id="live", content=f"live {n}") for n in (1, 2)])
    source = [record(seq, run="run-a", **same) for seq in (1, 2, 3)]
    first = await store.import_events(source)
    assert [(r.old_seq, r.new_seq) for r in first.renumbered] == [(1, 3), (2, 4), (3, 5)]
    assert summary(await store.import_events(source)) == (0, 3, 0, 0)
    assert summary(await store.import_events(source[1:2])) == (0, 1, 0, 0)
    await store.delete_by_run("thread-1", "run-a")
    await store.import_events(source[:2])
    again = await store.import_events(source)
    assert summary(again) == (1, 2, 1, 0)  # its seq is below the last: renumbered
    assert [content for _, content in await stored(store)] == ["live 1", "live 2", *["again"] * 3]


async def test_verify_agrees_with_an_import_and_names_what_went_missing(
    store: RunEventStore,
) -> None:
    """verify_threads: no difference after an import (renumbered writers too); a deleted run is missing."""
    source = [{**r, "user_id": "u"} for r in two_writers()]
    await store.import_events(source)
    agreed = await verify_threads(store, source)
    assert agreed.differences == []
    assert (agreed.records, agreed.matched, agreed.threads) == (6, 6, 1)
    await store.delete_by_run("thread-1", "run-b")
    found = await verify_threads(store, source, lambda index: f"line {index + 1}")
    missing = [d for d in found.differences if d.kind == "missing"]
    assert [(d.seq, d.source) for d in missing] == [(1, "line 4"), (2, "line 5"), (3, "line 6")]
    assert any(d.kind == "ui" for d in found.differences)


@pytest.mark.cluster_wide  # list_threads reads every thread's counter
async def test_an_imported_threads_activity_is_its_events_time_for_everyone_and_each_user(
    store: RunEventStore,
) -> None:
    """list_threads after an import: last activity is the latest event's time, per user too."""
    await store.import_events(
        [
            record(1, second=5, user_id="u"),
            record(2, second=9, user_id="v"),
            record(3, second=7, user_id="u"),
        ]
    )
    [thread] = await store.list_threads()
    assert thread["updated_at"] == "2025-07-01T12:00:09.000000+00:00"
    [mine] = await store.list_threads(user_id="u")
    assert mine["updated_at"] == "2025-07-01T12:00:07.000000+00:00"


async def test_import_source_locates_every_conflict_renumbering_and_bad_line(
    store: RunEventStore, tmp_path: Path
) -> None:
    """import_source names each record, and the record it collides with, by file and line."""
    path = tmp_path / "export.jsonl"
    lines = [
        record(1),
        record(2, event_id="key"),
        record(3, "run-b", event_id="key"),  # line 3: its event_id is held by line 2
        record(1, "run-b", second=1),  # line 4: line 1 has seq 1 too
        {"thread_id": 5},  # line 5: bad
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    result = await import_source(store, str(path))
    at = SourcePosition(str(path), 0)
    line = {n: SourcePosition(at.source, n) for n in range(1, 6)}
    assert result.conflicts == [
        LocatedConflict(
            line[4], "thread-1", 1, f"{line[1]} has seq 1 too", "renumbered", other=line[1]
        ),
        LocatedConflict(
            line[3],
            "thread-1",
            3,
            f"its event_id 'key' is held by another event ({line[2]})",
            "skipped",
            other=line[2],
        ),
    ]
    assert [(r.position, r.old_seq, r.new_seq) for r in result.renumbered] == [
        (line[4], 1, 2),
        (line[2], 2, 3),
    ]
    assert [bad.position for bad in result.bad_lines] == [line[5]]
    assert (result.lines, result.records, result.inserted, result.skipped) == (5, 4, 3, 1)


async def test_an_event_id_conflict_with_an_earlier_record_names_that_record(
    store: RunEventStore,
) -> None:
    """The conflict of a record whose event_id an earlier record of the input holds says which one."""
    result = await store.import_events(
        [record(1, event_id="key"), record(2, "run-b", event_id="key")]
    )
    (conflict,) = result.conflicts
    assert (conflict.index, conflict.other, conflict.event_id) == (1, 0, "key")
    assert conflict.reason == "its event_id 'key' is held by another event (record 0 of the input)"
    assert conflict.describe(lambda index: f"line {index + 1}").endswith("(line 1)")
