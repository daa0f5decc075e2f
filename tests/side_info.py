"""Rewriting a plane's side information (PLANE_META) in a method's streams, for tests that damage it."""

import json

from medcodec.pipelines.base import Stream, unpack_side_info


def with_meta(streams, change):
    """The streams with their first (PLANE_META) payload replaced by change(meta) applied to its JSON."""
    meta = unpack_side_info(streams[0].payload)
    change(meta)
    return [Stream(streams[0].kind, 0, json.dumps(meta).encode())] + streams[1:]
