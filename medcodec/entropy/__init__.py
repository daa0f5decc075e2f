"""Entropy coders: rANS under integer frequency tables, canonical Huffman for small integer arrays."""

from medcodec.entropy.huffman import huffman_decode, huffman_encode
from medcodec.entropy.rans import Segment, cost_bits, decode_segments, encode_segments

__all__ = ["Segment", "cost_bits", "decode_segments", "encode_segments", "huffman_decode",
           "huffman_encode"]
