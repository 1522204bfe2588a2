"""Fitting the SMPL body to image evidence: SMPLify (2D keypoints -> pose, shape, camera) in JAX."""
