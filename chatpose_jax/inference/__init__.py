"""Inference: prompts, image preprocessing, streaming chat sessions, batched prediction, pose files.

`session.ChatModel.load(checkpoint)` loads any checkpoint form with its tokenizer; a
`session.ChatSession` keeps a conversation and answers turn by turn (tokens streamed);
`outputs.write_pose_files` turns a `<POSE>` into npz / OBJ / PNG; `predict.predict_records`
answers many prompts in batches. Nothing here imports TensorFlow or the data pipeline.
"""
