"""Where the work runs: devices and precision, the process group of a multi-process run, and how a
model is sharded (FSDP) across it."""
