"""Device meshes, logical-axis rules and multi-host start. The only place that knows mesh axes."""
