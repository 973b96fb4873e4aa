"""Where conv2d's output tiles fall along one spatial axis, and which input rows each one reads.

Pure arithmetic (no dask): pykern.dask builds its graph from these tiles, and the tests check
them on their own. One axis at a time, as height and width are independent:

    input rows [0, size), split into ``chunks``;  output rows [0, out) with
    output row o reading the (unpadded) input rows o*stride - pad + dil*t, t = 0 .. taps-1.

An input chunk starting at row b hands its output tile the rows o whose first read
o*stride - pad is at or past b: the tile boundary is ceil((b + pad) / stride), so boundaries
fall on the stride whatever the chunking, and an input chunk with no row starting a stride
period (a one-row chunk under stride 2) gives no tile of its own: its rows are another tile's
halo. Empty tiles are dropped, as pykern refuses empty arrays. The halo of a tile is the rows it
reads past its own chunk: dil*(taps-1) + 1 - stride of them at most, plus the padding at either
end, which the tile fills with zeros itself.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tile:
    """One output tile along an axis.

    out: (o0, o1), the output rows it computes; need: (lo, hi), the input rows they read, in
    unpadded coordinates (lo < 0 or hi > size where they reach into the padding); sources:
    ((chunk index, start, stop in that chunk, offset in the tile's local input), ...), the
    pieces of input chunks that fill [max(lo, 0), min(hi, size)).
    """

    out: tuple
    need: tuple
    sources: tuple

    @property
    def length(self) -> int:
        """Rows of the tile's local (zero-padded) input: exactly what its outputs read."""
        return self.need[1] - self.need[0]


def axis_tiles(chunks, out: int, taps: int, stride: int, pad: int, dil: int) -> list:
    """The output tiles of one spatial axis, in order; together they cover [0, out) exactly once.

    chunks: the input chunk sizes along the axis (dask's ``x.chunks[2]`` or ``[3]``); out: the
    output size (P or Q); taps: the filter size (R or S); stride, pad, dil: that axis's entries.
    """
    starts = [0]
    for c in chunks:
        starts.append(starts[-1] + c)
    bounds = {0, out}
    for b in starts[1:-1]:
        bounds.add(min(out, max(0, -(-(b + pad) // stride))))  # ceil((b + pad) / stride)
    bounds = sorted(bounds)
    span = dil * (taps - 1) + 1  # input rows one output row reads
    tiles = []
    for o0, o1 in zip(bounds, bounds[1:]):
        lo, hi = o0 * stride - pad, (o1 - 1) * stride + span - pad
        sources = []
        for j, (cs, ce) in enumerate(zip(starts, starts[1:])):
            a, b = max(lo, cs), min(hi, ce)
            if a < b:
                sources.append((j, a - cs, b - cs, a - lo))
        tiles.append(Tile((o0, o1), (lo, hi), tuple(sources)))
    return tiles


def direct_padding(tile: Tile, chunks, taps: int, stride: int, dil: int):
    """The symmetric padding under which pk.conv2d on one whole input chunk gives exactly this
    tile's rows (then the chunk goes to the kernel as it is, with no copy), or None.

    True when the tile reads one chunk, all of it, reaching ``top`` rows into the padding before
    it and no more than ``top`` after it, and padding both ends by ``top`` yields no extra row.
    """
    if len(tile.sources) != 1:
        return None
    j, a, b, _ = tile.sources[0]
    if a != 0 or b != chunks[j]:
        return None
    top = -tile.need[0] + sum(chunks[:j])  # rows of zeros before the chunk
    bottom = tile.need[1] - sum(chunks[:j + 1])
    if top < 0 or bottom < 0 or bottom > top:
        return None
    rows = (chunks[j] + 2 * top - dil * (taps - 1) - 1) // stride + 1
    return top if rows == tile.out[1] - tile.out[0] else None
