"""Device meshes, logical-axis rules and multi-host start. The only place that knows mesh axes."""


def initialize(**kwargs) -> bool:
    """`chatpose_jax.parallel.distributed.initialize`: joins the job's processes (imports JAX only when called)."""
    from chatpose_jax.parallel.distributed import initialize as _initialize

    return _initialize(**kwargs)
