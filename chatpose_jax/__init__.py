"""chatpose-jax: ChatPose (LLaVA-1.5 with a `<POSE>` head) in JAX and Flax.

The library never imports TensorFlow: only `data_pipelines` does, so the model, the body model
and the train step run where TensorFlow is absent (a GPU box, a TPU VM without tf).
"""

__version__ = "0.1.0"
