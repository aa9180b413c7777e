"""Board I/O: putting code on a board and running it.

One module per command (`lowwater check|run|vboard|deploy|flash|mpy|size|fit`),
plus what they share: mpybuild (mpy-cross builds) and uf2 (UF2 images).
"""
