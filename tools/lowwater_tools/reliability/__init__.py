"""Reliability: `lowwater soak` (memory run and SIGKILL power-loss run) and
`lowwater log` (reading and pulling the power-loss-safe flash log)."""
