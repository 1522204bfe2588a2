"""The text-pose retrieval model of PoseScript's recipe, in Flax, for the text-to-pose benchmarks."""
