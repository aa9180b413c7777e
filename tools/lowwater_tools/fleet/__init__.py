"""Fleet telemetry over MQTT (docs/fleet.md): the `lowwater fleet` command, its
state, the Prometheus exporter, a local Mosquitto and networked virtual boards."""
