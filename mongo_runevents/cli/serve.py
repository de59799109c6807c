"""``serve``: the read-only web viewer (:mod:`mongo_runevents.web`, the ``web`` extra)."""

from __future__ import annotations

import argparse

from .demo import write_demo_if_empty
from .options import Context


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``serve`` (they import without the web extra)."""
    from ..web.command import add_arguments

    add_arguments(parser)


async def run_serve(context: Context) -> int:
    """Run the viewer; on the embedded server, write the demo's thread first if the database is empty."""
    from ..web.command import serve

    prepare = write_demo_if_empty if context.args.uri is None else None
    return await serve(context.store, context.args, prepare=prepare)
