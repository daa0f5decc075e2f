"""Raster method: every pixel predicted from its causal neighbours, for noise-dominated planes.

Why: the subimage methods predict a quarter of the plane at a time from what is already coded, so no
pixel sees its left neighbour in the same subimage, and subimage A goes to JPEG-XL at a quarter of the
resolution. On 8-bit images with structure the networks make up for it; on 12-16-bit CT and MR, whose
bits are mostly noise, they lose to JPEG-XL (which codes in raster order) and the codec falls back to
it. This method codes in raster order with a context model JPEG-XL does not have, fitted to the plane:

* prediction (1/16 sample units): per class of pixels, least-squares weights on the 12 causal
  neighbours' differences from the left neighbour W (first stage), plus weights on the 12 neighbours'
  first-stage errors (second stage: the local bias the first stage leaves; 1.5 % smaller files).
  Classes: 12 by local activity, 4 for the border rows and columns (whose out-of-plane neighbours read
  a constant), 1 for flat pixels (activity 0); or, where it codes smaller, the 12 activity slots named
  per 24x24 block instead (block classes fitted as MRP fits its classes: regions, not activity), or by
  the pixel's phase on the grid the plane was resampled from (``phase``: scaled images).
* scale: integer weights on 8 neighbours' final errors and the activity give a sum s; its bucket
  ``floor(8 log2 (s + 1)) // 2`` indexes a per-plane scale index: the encoder searches the index that
  codes each bucket's pixels in fewest bits.
* coding: the learned methods' residual tables (``entropy.residual_model``), one table per pixel,
  rANS via constriction; the low bits a wide distribution sheds and escaped values go to a raw bit
  stream in the same order.

Everything between the pixels and the tables is integer arithmetic (int64), so every machine computes
the same tables. The weights are fitted in floating point by the encoder only, then rounded and sent.

Decoding is sequential but vectorised along wavefronts: pixel (i, j) needs only neighbours with a
smaller ``2 i + j`` (the template reaches one column right on the row above, two on the row above
that), so each of the ``2 H + W - 2`` wavefronts is decoded as one batch: its per-pixel arithmetic in
compiled loops (``wavefront``, ``tables``, ``local_ls``), the networks' products in numpy.

A plane whose values all lie on a grid ``step * k + offset`` (12-bit data stored shifted into 16
bits) is coded as its k; one that uses few of the values between its extremes may be coded as the
index of each value in its sorted value set (a palette).

Streams: PLANE_META (the weights: a JSON object, ``base.pack_side_info``), RESIDUAL 0 (rANS words),
METHOD_STREAM 0 (raw bits).

Modules: ``layout`` (the template, padding, classes and the format's bounds), ``side_info`` (the
weights a frame sends: ``RasterModel``), ``prediction`` (neighbours to prediction and scale key),
``coding`` (prediction and scale to tables, probabilities and raw bits), ``tables`` (the probability
rows, compiled), ``local_ls`` (the local least-squares prediction), ``phase`` (resampling-phase classes),
``fitting`` and ``analysis`` (the encoder), ``wavefront`` and ``decoder`` (the decoder), ``method``
(``RasterMethod``).
"""

# every part, so that ``raster.<part>`` names it (the method needs them all)
from medcodec.pipelines.raster import (analysis, coding, decoder, fitting, layout, local_ls, method, phase,
                                       prediction, side_info, tables, wavefront)
from medcodec.pipelines.raster.method import RasterMethod

__all__ = ["RasterMethod", "analysis", "coding", "decoder", "fitting", "layout", "local_ls", "method", "phase",
           "prediction", "side_info", "tables", "wavefront"]
