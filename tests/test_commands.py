"""The targeting check of the test registry catches a command that names no thread."""

from __future__ import annotations

from tests.commands import untargeted_commands


def test_commands_naming_their_thread_pass() -> None:
    """Finds, counts, inserts, updates and deletes that name their thread(s) are targeted."""
    assert (
        untargeted_commands(
            [
                ("find", {"find": "run_events", "filter": {"thread_id": "t", "seq": {"$gt": 1}}}),
                (
                    "aggregate",
                    {"aggregate": "run_events", "pipeline": [{"$match": {"thread_id": "t"}}]},
                ),
                (
                    "insert",
                    {"insert": "run_events", "documents": [{"thread_id": "a"}, {"thread_id": "b"}]},
                ),
                (
                    "update",
                    {"update": "run_events_counters", "updates": [{"q": {"_id": "t"}, "u": {}}]},
                ),
                (
                    "delete",
                    {
                        "delete": "run_events_blobs.files",
                        "deletes": [{"q": {"metadata.thread_id": "t"}}],
                    },
                ),
                ("find", {"find": "run_events_counters", "filter": {"_id": {"$in": ["a", "b"]}}}),
                ("find", {"find": "run_events_settings", "filter": {"_id": "retention"}}),
                ("createIndexes", {"createIndexes": "run_events"}),
            ]
        )
        == []
    )


def test_commands_without_a_thread_are_caught() -> None:
    """A find by anything but the thread, an operator in place of an id, a bare delete: all flagged."""
    found = untargeted_commands(
        [
            ("find", {"find": "run_events", "filter": {"event_id": "e"}}),
            ("find", {"find": "run_events", "filter": {"thread_id": {"$ne": None}}}),
            ("delete", {"delete": "run_events", "deletes": [{"q": {}}]}),
            ("find", {"find": "run_events_counters", "filter": {"last_seq": {"$gt": 0}}}),
            (
                "aggregate",
                {"aggregate": "run_events", "pipeline": [{"$group": {"_id": "$run_id"}}]},
            ),
        ]
    )
    assert len(found) == 5
