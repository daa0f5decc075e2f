"""Side-by-side benchmark of medcodec against imagecodecs' classical lossless codecs.

`runner` codes every plane and verifies each round trip, `report` turns records into tables and
files, `codecs` holds the classical adapters, `cli` is the `medcodec bench` command.
"""
