"""FFT lengths shared by the whole-trace FNO and the streaming causal spectral network."""
from __future__ import annotations

__all__ = ["fast_fft_length"]


def fast_fft_length(n: int) -> int:
    """Smallest length >= n whose prime factors are 2, 3 and 5 (fast FFTs on CPU and CUDA)."""
    best = 2 * n
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best
