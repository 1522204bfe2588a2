"""Synthetic datasets in the published raw formats, made from the synthetic SMPL body model.

`poses` samples plausible poses, `posecodes` describes them in words, `render` draws them,
`writers` lays everything out as PoseScript + AMASS, SPIN npz + images, 4D-Humans tars,
LLaVA-Instruct JSON + COCO images, and the SPG / RPE benchmarks.
"""
