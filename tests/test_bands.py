import io

import numpy as np
import pytest

from medcodec import bands, codec
from medcodec.container import format as container
from medcodec.errors import CorruptStreamError
from planes import smooth


def test_band_count_follows_the_plane_size():
    assert bands.band_count((1024, 1024)) == 1  # 1 Mi pixels: under BAND_PIXELS
    assert bands.band_count((1760, 1760)) == 1  # 2.95 Mi pixels: two bands would be under 1.5 Mi each
    assert bands.band_count((1762, 1800)) == 2
    assert bands.band_count((3062, 2394)) == 4  # a mammogram
    assert bands.band_count((2500, 2048)) == 2  # 3.3 bands' worth: a power of two
    assert bands.band_count((40, 1 << 20)) == 2  # at least ROW_MULTIPLE rows a band
    assert bands.band_count((16 * 7, 1 << 20)) == 4
    assert bands.band_count((100_000, 100_000)) == bands.MAX_BANDS


@pytest.mark.parametrize("height, count", [(1762, 2), (3062, 4), (35, 2), (16 * 7 + 3, 7), (16 * 64, 64)])
def test_boundaries_cut_equal_bands_on_multiples_of_sixteen_rows(height, count):
    rows = bands.boundaries(height, count)
    assert rows[0] == 0 and rows[-1] == height and len(rows) == count + 1
    assert all(r % bands.ROW_MULTIPLE == 0 for r in rows[:-1])
    assert all(b > a for a, b in zip(rows, rows[1:]))
    assert max(np.diff(rows)) - min(np.diff(rows)) <= 2 * bands.ROW_MULTIPLE


def test_split_and_merge_give_the_planes_back(monkeypatch):
    monkeypatch.setattr(bands, "BAND_PIXELS", 1000)
    small, large = smooth((20, 30), 12), smooth((70, 40), 12, seed=1)
    frames, counts = bands.split([small, large])
    assert counts == [1, 2] and [f.shape for f in frames] == [(20, 30), (32, 40), (38, 40)]
    assert frames[0] is small  # a plane of one band is not copied
    merged = bands.merge(frames, counts)
    assert np.array_equal(merged[0], small) and np.array_equal(merged[1], large)
    assert bands.plane_of_frame(counts) == [(0, 0), (1, 0), (1, 1)]


def test_header_bands_are_checked():
    assert bands.counts_of({}, 3) == [1, 1, 1]
    assert bands.counts_of({"bands": [1, 2]}, 3) == [1, 2]
    for wrong in ([1, 1], [3, 1], [0, 3], "3", [True, 2], [], [1.0, 2], [bands.MAX_BANDS + 1]):
        with pytest.raises(CorruptStreamError, match="bands"):
            bands.counts_of({"bands": wrong}, 3)
    bands.check_shapes([(16, 8), (5, 8), (4, 4)], [2, 1])
    with pytest.raises(CorruptStreamError, match="width"):
        bands.check_shapes([(16, 8), (5, 9)], [2])


@pytest.fixture
def small_bands(monkeypatch):
    """Bands of a few thousand pixels, so that a test plane is cut into several."""
    monkeypatch.setattr(bands, "BAND_PIXELS", 1500)


@pytest.mark.parametrize("mode", ["fast", "slow", "latent"])
def test_a_large_plane_is_coded_as_bands_and_decoded_whole(small_bands, mode):
    plane = smooth((70, 48), 12)  # 3360 pixels: two bands, of 32 and 38 rows
    assert "bands" not in container.unpack(codec.encode(plane, mode=mode))[0].meta  # asked for only
    data = codec.encode(plane, mode=mode, in_bands=True)
    header, _ = container.unpack(data)
    assert (header.height, header.width, header.frames) == (70, 48, 2)
    assert header.meta["bands"] == [2]
    assert [f["shape"] for f in header.meta["frames"]] == [[32, 48], [38, 48]]
    decoded = codec.decode(data)
    assert len(decoded.planes) == 1 and np.array_equal(decoded.planes[0], plane)
    assert np.array_equal(np.load(io.BytesIO(decoded.data)), plane)
    summary = codec.info(data)
    assert summary["planes"] == 1 and summary["pixels"] == plane.size
    assert [(f["plane"], f["band"], f["shape"]) for f in summary["frames"]] == [(0, 0, [32, 48]), (0, 1, [38, 48])]
    # the classical mode and the size bound code whole planes
    classical = container.unpack(codec.encode(plane, mode="classical"))[0]
    assert classical.frames == 1 and "bands" not in classical.meta
    assert len(data) <= len(codec.encode(plane, mode="classical"))
    assert container.unpack(codec.encode(plane, mode="classical", in_bands=True))[0].frames == 1


def test_the_bands_of_several_planes_decode_in_worker_processes_to_the_same_file(small_bands, monkeypatch):
    planes = np.stack([smooth((70, 48), 12, seed=s) for s in range(2)])
    data = codec.encode(planes, mode="fast", in_bands=True)
    assert container.unpack(data)[0].meta["bands"] == [2, 2]
    sequential = codec.decode(data)
    from medcodec import parallel

    monkeypatch.setattr(codec, "PROCESS_MIN_PIXELS", 0)
    monkeypatch.setattr(parallel, "available_memory", lambda: None)
    in_processes = codec.decode(data, processes=2)
    assert in_processes.data == sequential.data
    assert np.array_equal(np.load(io.BytesIO(sequential.data)), planes)


def _repack(data, **changes):
    header, sections = container.unpack(data)
    for key, value in changes.items():
        setattr(header, key, value)
    return container.pack(header, sections)


def test_damaged_bands_are_refused_before_decoding(small_bands):
    data = codec.encode(smooth((70, 48), 12), mode="fast", in_bands=True)
    header = container.unpack(data)[0]
    narrower = {**header.meta["frames"][1], "shape": [38, 47]}
    for meta in ({**header.meta, "bands": [1]}, {**header.meta, "bands": [1, 1]},
                 {**header.meta, "frames": [header.meta["frames"][0], narrower]}):
        with pytest.raises(CorruptStreamError):
            codec.decode(_repack(data, meta=meta))
    # without its bands the file's frames are two planes: the pixel checksum refuses them
    with pytest.raises(CorruptStreamError, match="checksum"):
        codec.decode(_repack(data, meta={k: v for k, v in header.meta.items() if k != "bands"}))
