"""Running the same work under two torch configurations, for the determinism tests: 1 thread with
oneDNN off, then 2 threads with oneDNN on (different CPU code paths and reduction orders)."""

import numpy as np
import torch


def under_two_configurations(work):
    """(work() under 1 thread / oneDNN off, work() under 2 threads / oneDNN on); settings restored."""
    old = torch.get_num_threads(), torch.backends.mkldnn.enabled
    try:
        torch.set_num_threads(1)
        torch.backends.mkldnn.enabled = False
        one_way = work()
        torch.set_num_threads(2)
        torch.backends.mkldnn.enabled = True
        other_way = work()
    finally:
        torch.set_num_threads(old[0])
        torch.backends.mkldnn.enabled = old[1]
    return one_way, other_way


def assert_coding_is_configuration_independent(method, plane, bits):
    """A method's streams for the plane are the same bytes under both configurations, and each
    configuration decodes what the other encoded back to the plane."""
    one_way, other_way = under_two_configurations(lambda: method.encode(plane, bits))
    assert one_way == other_way
    decoded = under_two_configurations(lambda: (method.decode(other_way, plane.shape, bits),
                                                method.decode(one_way, plane.shape, bits)))
    assert all(np.array_equal(d, plane) for pair in decoded for d in pair)
