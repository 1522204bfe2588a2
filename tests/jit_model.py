"""The model's forward as one compiled program per config, for tests that compare its outputs.

`chatpose.apply` outside `jax.jit` dispatches op by op, which takes most of a small test's time;
the compiled program is also the one training and decoding run.
"""

import jax

from chatpose_jax.model import chatpose

# apply(config, params, lora_params, input_ids, pixel_values=None, ...): see `chatpose.apply`.
apply = jax.jit(chatpose.apply, static_argnums=0)
