"""train.jpeg_priors: the JPEG coefficient coder's starting probabilities, learnt from a train folder."""

import hashlib

import numpy as np
import pytest
from PIL import Image

from jpegs import ct_small

from medcodec.entropy import jpeg_coefficients
from medcodec.train import jpeg_priors


def test_priors_from_a_folder(tmp_path):
    train = tmp_path / "train"
    train.mkdir()
    Image.fromarray(ct_small(8)).save(train / "a.png")
    np.save(train / "b.npy", ct_small(12, shift=30))
    out = tmp_path / "priors.u16"
    assert jpeg_priors.main([str(train), "--output", str(out)]) == 0
    priors = np.frombuffer(out.read_bytes(), "<u2")
    assert jpeg_coefficients.check_priors(priors).shape == (jpeg_coefficients.CONTEXTS,)
    assert (priors != 32768).any()
    with pytest.raises(SystemExit, match="--force"):
        jpeg_priors.main([str(train), "--output", str(out)])
    first = hashlib.sha256(out.read_bytes()).hexdigest()
    assert jpeg_priors.main([str(train), "--output", str(out), "--force"]) == 0
    assert hashlib.sha256(out.read_bytes()).hexdigest() == first  # deterministic


def test_a_test_split_is_refused(tmp_path):
    (tmp_path / "test").mkdir()
    with pytest.raises(SystemExit, match="train split only"):
        jpeg_priors.main([str(tmp_path / "test"), "--output", str(tmp_path / "p.u16")])


def test_counts_to_probabilities():
    counts = np.zeros((jpeg_coefficients.CONTEXTS, 2), np.int64)
    counts[0] = 3, 1
    counts[1] = 0, 10 ** 6
    priors = jpeg_priors.priors_from(counts)
    assert priors[0] == (4 << 16) // 6 and priors[1] == jpeg_coefficients.PROB_MIN and priors[2] == 32768
