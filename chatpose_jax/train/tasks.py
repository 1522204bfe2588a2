"""The tasks `chatpose-train` can run, by `experiment.task`; entry points hand one to `train_and_evaluate`.

"chatpose" is the LLaVA + pose-head model; "retrieval" the text-pose retrieval model the text
benchmarks use. The loop itself names no task: it reads only the `loop.Task` protocol.
"""

from __future__ import annotations

from chatpose_jax.retrieval.task import RetrievalTask
from chatpose_jax.train.chatpose_task import ChatPoseTask

TASKS = {"chatpose": ChatPoseTask, "retrieval": RetrievalTask}


def task_for(experiment):
    """A new task object for `experiment.task`."""
    return TASKS[experiment.task]()
