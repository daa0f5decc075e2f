"""Running the same work under two torch configurations, for the determinism tests: 1 thread with
oneDNN off, then 2 threads with oneDNN on (different CPU code paths and reduction orders)."""

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
