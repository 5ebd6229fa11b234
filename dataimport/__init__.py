"""Domain package of the data-import service: no Temporal imports live here."""

import os

# polars allocates through its own jemalloc, which by default keeps freed pages for 10 s:
# a worker that stages one batch after another then holds several batches' worth of dead
# pages. They are returned after 1 s instead (purged as the allocator works: no background
# thread, which every short CLI process would carry too). One arena for all of polars'
# threads: per-thread arenas each kept their own partly used pages (1M-row CMDB import, peak
# worker RSS 396-403 MiB with them, 371-392 MiB with one, no slower). Read when polars loads,
# so set before any module here imports it; an operator's own setting wins.
os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:1000,muzzy_decay_ms:0,narenas:1")
