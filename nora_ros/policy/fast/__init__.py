"""FAST+ action tokens: DCT and quantization, the byte-level BPE table, and the decoding
constraint that keeps a generated sequence decodable.

May import the package root only.
"""
