"""Registry of coding methods by name. Learned methods load lazily: importing torch and weights
costs seconds, and the classical method must work even where they are missing."""

from __future__ import annotations

import functools
import importlib

from medcodec.errors import InvalidInputError, MedcodecError, ModelMismatchError
from medcodec.pipelines.base import Method, Stream

__all__ = ["Method", "Stream", "METHOD_NAMES", "JPEG_HISTORY_METHODS", "MODEL_FREE", "get_method"]

# name -> (module, class). Learned methods take device=...; classical and jpeg take effort=...
_LEARNED: dict[str, tuple[str, str]] = {
    "fast": ("medcodec.pipelines.subimage", "FastMethod"),
    "slow": ("medcodec.pipelines.subimage", "SlowMethod"),
    "latent": ("medcodec.pipelines.latent", "LatentMethod"),
}
METHOD_NAMES: tuple[str, ...] = ("classical", *_LEARNED)
# methods a frame may name that need no weights: the classical fallback, the recovered JPEG history of
# a once-JPEG 8-bit plane, and raster-order prediction with per-plane weights (noise-dominated planes);
# the learned modes offer the last two beside their own streams
# the JPEG history's frame methods: aligned, cut off the grid, and coefficients coded by medcodec
JPEG_HISTORY_METHODS: tuple[str, ...] = ("jpeg", "jpeg-crop", "jpeg-dct")
MODEL_FREE: tuple[str, ...] = ("classical", *JPEG_HISTORY_METHODS, "raster")


@functools.lru_cache(maxsize=16)
def get_method(name: str, device: str = "auto", effort: int | None = None, correction: str | None = None,
               robust: int | None = None, thorough: bool = False, scales: tuple[str, ...] | None = None,
               local_min_share: float | None = None, local_radii: tuple[int, ...] | None = None,
               second: str | None = None) -> Method:
    """The method called name, ready to code; cached, since learned methods load weights once.
    correction: the raster method's learned prediction correction to encode with (a models/ id; None:
    the default one); its decoder loads the one each frame names. robust: which of the raster encoder's
    weight fits are robust (``raster.analysis.Analysis``; None: by the plane's bit depth). thorough: the raster
    encoder's larger fit and search samples (the slow mode's extra try). scales: the learned scales (models/
    ids) the raster encoder offers (None: its default). local_min_share: the share of a raster frame's
    estimate the local least-squares blend must save to be sent (None: the raster method's default).
    local_radii: the radii of the local windows the raster encoder may blend in besides the default one.
    second: the learned correction (a models/ id) the raster encoder may stack on the first (None: none).

    Raises ModelMismatchError when a learned method's code or weights are not installed.
    """
    if name == "classical":
        from medcodec.pipelines.classical import ClassicalMethod

        return ClassicalMethod(effort=effort)
    if name in JPEG_HISTORY_METHODS:
        from medcodec.pipelines.jpeg_history import (CroppedJpegHistoryMethod, JpegCoefficientsMethod,
                                                     JpegHistoryMethod)

        return {"jpeg": JpegHistoryMethod, "jpeg-crop": CroppedJpegHistoryMethod,
                "jpeg-dct": JpegCoefficientsMethod}[name](effort=effort)
    if name == "raster":
        from medcodec.pipelines.raster import RasterMethod

        options = {"correction_model": correction, "scale_models": scales, "local_min_share": local_min_share,
                   "local_radii": local_radii, "second_model": second}
        return RasterMethod(robust=robust, thorough=thorough, **{k: v for k, v in options.items() if v is not None})
    if name not in _LEARNED:
        raise InvalidInputError(f"unknown method {name!r}; choose one of {', '.join(METHOD_NAMES)}")
    module_name, class_name = _LEARNED[name]
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ModelMismatchError(
            f"method {name!r} is not available in this installation ({exc}); "
            f"use --mode classical, or install a medcodec release that ships it") from exc
    try:
        return cls(device=device)
    except MedcodecError:
        raise
    except (FileNotFoundError, ImportError) as exc:
        raise ModelMismatchError(f"method {name!r} cannot load its weights ({exc}); use --mode classical") from exc
