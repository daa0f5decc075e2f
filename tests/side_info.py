"""Rewriting a plane's side information (PLANE_META) in a method's streams, for tests that damage it."""

import json

import numpy as np

from medcodec.pipelines.base import Stream, unpack_side_info


def with_meta(streams, change):
    """The streams with their first (PLANE_META) payload replaced by change(meta) applied to its JSON."""
    meta = unpack_side_info(streams[0].payload)
    change(meta)
    return [Stream(streams[0].kind, 0, json.dumps(meta).encode())] + streams[1:]


def assert_feature_used_exact_and_paying(method, plane, bits, feature, **without):
    """The method's streams for the plane list the side-information feature (required, and non-null for
    some set), decode exactly, and are smaller than the same method's without it (constructor
    arguments ``without``), whose side information does not name it."""
    streams = method.encode(plane, bits)
    meta = unpack_side_info(streams[0].payload)
    assert feature in meta["requires"] and any(entry is not None for entry in meta[feature])
    assert np.array_equal(method.decode(streams, plane.shape, bits), plane)
    plain = type(method)(device="cpu", **without).encode(plane, bits)
    assert feature not in unpack_side_info(plain[0].payload)
    assert sum(len(s.payload) for s in streams) < sum(len(s.payload) for s in plain)
