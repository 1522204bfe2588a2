"""The terminal conversation of `chatpose-chat`: read a line, stream the answer, write its poses.

Commands: `/image PATH` attaches an image to the next turn, `/reset` forgets the conversation,
`/quit` (or end of input) leaves. Works the same on a terminal and through a pipe.
"""

from __future__ import annotations

from typing import TextIO

from chatpose_jax.inference import outputs
from chatpose_jax.inference.images import ImageError
from chatpose_jax.inference.session import Answer, ChatSession, PromptTooLongError

HELP = "Commands: /image PATH (attach an image to the next turn), /reset, /quit."


class PoseFileWriter:
    """Writes `turn_K.{npz,obj,png}` for each pose of an answer; loads the body model on first use."""

    def __init__(self, out_dir: str, body_model: str = outputs.SYNTHETIC):
        self.out_dir = out_dir
        self.body_model_spec = body_model
        self._body_model = None

    def __call__(self, turn: int, answer: Answer) -> list[dict[str, str]]:
        if not answer.poses:
            return []
        if self._body_model is None:
            self._body_model = outputs.load_body(self.body_model_spec)
        written = []
        for i, pose in enumerate(answer.poses):
            stem = f"turn_{turn}" if i == 0 else f"turn_{turn}_{i + 1}"
            written.append(outputs.write_pose_files(self.out_dir, stem, pose, self._body_model, title=stem))
        return written


def answer_turn(session: ChatSession, text: str, writer: PoseFileWriter, out: TextIO) -> Answer:
    """Asks `text`, streams the answer to `out`, writes and prints the pose files."""
    out.write("ASSISTANT: ")
    out.flush()

    def show(piece: str):
        out.write(piece)
        out.flush()

    answer = session.ask(text, on_text=show)
    out.write("\n")
    for paths in writer(session.turns_answered, answer):
        out.write(f"pose written: {paths['npz']} {paths['obj']} {paths['png']}\n")
    out.flush()
    return answer


def run_terminal(session: ChatSession, writer: PoseFileWriter, stdin: TextIO, out: TextIO, err: TextIO) -> int:
    """The read-answer loop until `/quit` or end of input; returns the number of answered turns.

    A bad image path or a prompt that does not fit is reported on `err` and the session goes on.
    """
    out.write(f"{HELP}\n")
    answered = 0
    while True:
        out.write("USER: ")
        out.flush()
        line = stdin.readline()
        if not line:  # end of input
            out.write("\n")
            break
        text = line.strip()
        if not text:
            continue
        command, _, argument = text.partition(" ")
        if command == "/quit":
            break
        if command == "/reset":
            session.reset()
            out.write("(conversation reset)\n")
        elif command == "/image":
            if not argument.strip():
                err.write("/image needs a path: /image PATH\n")
                continue
            try:
                restarted = session.attach_image(argument.strip())
            except ImageError as e:
                err.write(f"{e}\n")
                continue
            note = "; the conversation restarts with it" if restarted else ""
            out.write(f"(image {argument.strip()} attached to the next turn{note})\n")
        elif command.startswith("/"):
            err.write(f"unknown command {command}. {HELP}\n")
        else:
            try:
                answer_turn(session, text, writer, out)
            except PromptTooLongError as e:
                out.write("\n")
                err.write(f"{e}; /reset starts a new conversation\n")
                continue
            answered += 1
        out.flush()
    return answered
