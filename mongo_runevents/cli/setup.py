"""``init`` and ``stats``: setting up the collections, and what they hold."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from datetime import timedelta
from typing import Any

from ..admin import apply_schema_validator, collect_stats, shard_collections
from .options import Context, retention_item
from .output import human_size, number_of, print_json


def add_init_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``init``."""
    parser.add_argument(
        "--validator",
        action="store_true",
        help="also install a $jsonSchema validator: the server then refuses event documents "
        "whose fixed fields are missing or mistyped, whoever writes them",
    )
    parser.add_argument(
        "--retention",
        metavar="CATEGORY=DAYS",
        type=retention_item,
        action="append",
        default=[],
        help="events of CATEGORY expire DAYS days after they are written, e.g. trace=30 "
        "(repeatable); creates the TTL index. Other categories are kept",
    )
    parser.add_argument(
        "--shard",
        action="store_true",
        help="shard the collections (needs a sharded cluster, reached through mongos)",
    )
    parser.add_argument(
        "--no-zones",
        dest="zones",
        action="store_false",
        help="with --shard: no zones keeping a thread's counter and events on one shard "
        "(writes then may become distributed transactions)",
    )


def init_store_options(args: argparse.Namespace) -> dict[str, Any]:
    """``init --retention`` builds the store with a retention, so that the TTL index is created."""
    if not args.retention:
        return {}
    return {"retention": {category: timedelta(days=days) for category, days in args.retention}}


def _days(days: int) -> str:
    return number_of(days, "day")


async def run_init(context: Context) -> int:
    """Create the indexes, and optionally the validator, the TTL index and the sharding."""
    args, store = context.args, context.store
    await store.ensure_indexes()
    identities = await store.add_missing_identities()
    if args.validator:
        await apply_schema_validator(store)
    steps = (await shard_collections(store, aligned_zones=args.zones)).steps if args.shard else None
    events = store.events_collection
    indexes = sorted(await events.index_information())
    retention = dict(args.retention)
    result = {
        "database": args.database,
        "collection": events.name,
        "indexes": indexes,
        "transactions": store.uses_transactions,
        "validator": args.validator,
        "retention_days": retention,
        "sharding_steps": steps,
        "identities_added": identities,
    }
    if args.json:
        print_json(result)
        return 0

    print(f"{args.database}.{events.name}: indexes ready ({', '.join(indexes)})")
    print(f"writes use transactions: {'yes' if store.uses_transactions else 'no'}")
    if identities:
        print(f"message identities added (get_message_seqs): {identities:,}")
    if args.validator:
        print(
            "schema validator: on; the server refuses event documents with missing or mistyped fields"
        )
    if retention:
        expiring = "; ".join(
            f"{category!r} events expire {_days(days)} after they are written"
            for category, days in sorted(retention.items())
        )
        print(f"retention: {expiring}; events of every other category are kept")
        print(
            "  recorded for the collection: stores created without a retention adopt it when "
            "they start; the TTL index 'expiry' deletes expired events; events written "
            "before carry no expiry and are kept"
        )
    else:
        print(
            "retention: none set (--retention CATEGORY=DAYS sets one); events are kept "
            "unless written by a store configured with a retention"
        )
    if steps is not None:
        print("sharding:")
        for step in steps:
            print(f"  {step}")
    return 0


def add_stats_arguments(parser: argparse.ArgumentParser) -> None:
    """``stats`` has no options of its own."""


async def run_stats(context: Context) -> int:
    """Threads, events per category, and the sizes of the collections and their indexes."""
    stats = await collect_stats(context.store)
    if context.args.json:
        print_json(asdict(stats))
        return 0
    print(f"threads: {stats.threads}")
    print(f"events:  {stats.events}")
    for category, count in stats.events_by_category.items():
        print(f"  {category:<20} {count:>12}")
    if not stats.collections:
        return 0
    print(f"{'collection':<28} {'documents':>10} {'data':>11} {'storage':>11} {'indexes':>11}")
    for name, info in stats.collections.items():
        print(
            f"{name:<28} {info['count']:>10} {human_size(info['size_bytes']):>11} "
            f"{human_size(info['storage_bytes']):>11} {human_size(info['index_bytes']):>11}"
        )
    print("index sizes:")
    for name, info in stats.collections.items():
        for index, size in info["indexes"].items():
            print(f"  {name + '.' + index:<50} {human_size(size):>11}")
    return 0
