"""One cell, measured: its spec, engines, instruments, leases, the sync/async twins, the recorder,
``--processes`` parts and failure classes."""
