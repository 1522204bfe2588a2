from chatpose_jax.demo.run import run

run()
