"""io.colour: the subtract-green transform of 8-bit RGB, exactly invertible."""

import numpy as np
from hypothesis import given, settings
from hypothesis.extra import numpy as hnp

from medcodec.io import colour


@given(hnp.arrays(np.uint8, hnp.array_shapes(min_dims=2, max_dims=2, max_side=9).map(lambda s: (*s, 3))))
@settings(max_examples=200, deadline=None, derandomize=True)
def test_the_colour_transform_is_exactly_invertible(rgb):
    planes = colour.forward(rgb)
    assert all(int(p.max(initial=0)) < 256 for p in planes)
    np.testing.assert_array_equal(colour.inverse(*planes), rgb)


def test_grey_pixels_give_the_grey_picture_and_constant_differences():
    ramp = np.arange(256, dtype=np.uint8)[None, :]
    g, dr, db = colour.forward(np.repeat(ramp[:, :, None], 3, axis=2))
    np.testing.assert_array_equal(g, ramp)
    assert set(np.unique(dr)) == set(np.unique(db)) == {colour.GREY}
