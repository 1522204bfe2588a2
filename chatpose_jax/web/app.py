"""The web chat: a gradio page over `ChatModel` / `ChatSession`, with a 3D viewer of each answer's body.

One `ChatSession` per browser tab (gradio's per-session state, a `Tab`), created on its first message. A
message is text and, optionally, an image (LLaVA holds one image per conversation: a new image
restarts it, as `/image` does in the terminal). The answer streams into the chat; when it holds
`<POSE>` the posed body is written by `chatpose_jax.inference.outputs` (turn_K.npz in the model's
camera frame, turn_K.obj turned upright for display), shown in the viewer and offered for download.

Bad input never stops the server: an image that does not decode, a prompt longer than the context or
a model that answers without a body each leave a message in the page's status line.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import threading
from collections.abc import Iterator

from chatpose_jax.inference.images import ImageError
from chatpose_jax.inference.session import ChatModel, ChatSession, PromptTooLongError
from chatpose_jax.inference.terminal import PoseFileWriter

TITLE = "ChatPose"
DEFAULT_PROMPT = "Could you generate the SMPL pose of a person who is sitting with arms raised?"


@dataclasses.dataclass
class Tab:
    """One browser tab's conversation, the folder its bodies go to, and the image it holds (a path)."""

    session: ChatSession
    out_dir: str
    image: str | None = None


class WebChat:
    """The page's logic without gradio: tabs, streaming, pose files. `build_app` wires it to widgets."""

    def __init__(self, model: ChatModel, out_dir: str, body_model: str = "synthetic", **generation):
        self.model = model
        self.out_dir = out_dir
        self.writer = PoseFileWriter(out_dir, body_model)
        self.generation = generation  # defaults of max_new_tokens, temperature, top_p, seed
        self._lock = threading.Lock()  # one answer at a time on the one model
        self._tabs = 0

    def new_tab(self) -> Tab:
        with self._lock:
            self._tabs += 1
            number = self._tabs
        return Tab(ChatSession(self.model, **self.generation), os.path.join(self.out_dir, f"tab_{number}"))

    def respond(
        self, tab: Tab | None, text: str, image: str | None, history: list[dict], **generation
    ) -> Iterator[tuple[Tab, list[dict], str | None, list[str], str]]:
        """Yields (tab, chat messages, mesh path or None, download paths, status) as the answer streams.

        `image` is the path the page's image widget holds (None when empty): a new one is attached to
        this turn (restarting a conversation about another image); the same one again changes nothing.
        """
        tab = tab or self.new_tab()
        session = tab.session
        history = list(history or [])
        text = (text or "").strip()
        if image and image != tab.image:
            try:
                restarted = session.attach_image(image)
            except ImageError as e:
                yield tab, history, None, [], f"Image not used: {e}"
                return
            tab.image = image
            if restarted:
                history = []
        if not text:
            yield tab, history, None, [], "Image attached: ask about it." if image else "Type a message."
            return
        history.append({"role": "user", "content": text})
        history.append({"role": "assistant", "content": ""})
        session.generation = {**session.generation, **generation}
        pieces: queue.Queue = queue.Queue()
        outcome: dict = {}

        def run():
            try:
                with self._lock:
                    outcome["answer"] = session.ask(text, on_text=pieces.put)
            except PromptTooLongError as e:
                outcome["error"] = f"{e}. Reset starts a new conversation."
            except Exception as e:  # noqa: BLE001  (the page reports it; the server stays up)
                outcome["error"] = f"{type(e).__name__}: {e}"
            finally:
                pieces.put(None)

        threading.Thread(target=run, daemon=True).start()
        while (piece := pieces.get()) is not None:
            history[-1] = {"role": "assistant", "content": history[-1]["content"] + piece}
            yield tab, history, None, [], "Answering..."
        if "error" in outcome:
            history = history[:-2]
            yield tab, history, None, [], outcome["error"]
            return
        answer = outcome["answer"]
        if not answer.poses:
            note = "" if "pose_head" in self.model.params else " (this checkpoint has no pose head)"
            yield tab, history, None, [], f"The answer holds no <POSE>: no body{note}."
            return
        with self._lock:  # one writer (one loaded body model) for every tab, each tab its own folder
            self.writer.out_dir = tab.out_dir
            written = self.writer(session.turns_answered, answer)
        first = written[0]
        files = [first["npz"], first["obj"]]
        yield tab, history, first["obj"], files, f"Body written: {os.path.basename(first['obj'])}"

    @staticmethod
    def reset(tab: Tab | None):
        """(tab, chat messages, mesh, downloads, status) after forgetting the conversation and its image."""
        if tab is not None:
            tab.session.reset()
            tab.image = None
        return tab, [], None, [], "Conversation reset."


def build_app(chat: WebChat, examples: list[tuple[str, str | None]] | None = None):
    """The gradio Blocks page of `chat` (not launched); `examples`: (prompt, image path or None) pairs."""
    import gradio as gr

    with gr.Blocks(title=TITLE) as app:
        gr.Markdown(f"# {TITLE}\nAsk for a pose in words, or attach a photo of a person and ask for theirs.")
        state = gr.State(None)
        with gr.Row():
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(label="Conversation", height=420, elem_id="chat")
                text = gr.Textbox(label="Message", placeholder=DEFAULT_PROMPT, elem_id="message", lines=2)
                image = gr.Image(label="Image (optional)", type="filepath", elem_id="image", height=200)
                with gr.Row():
                    send = gr.Button("Send", variant="primary", elem_id="send")
                    reset = gr.Button("Reset", elem_id="reset")
                status = gr.Textbox(label="Status", interactive=False, elem_id="status")
            with gr.Column(scale=2):
                viewer = gr.Model3D(label="Body (upright for display)", elem_id="viewer", height=420)
                downloads = gr.File(label="Pose (.npz) and mesh (.obj)", file_count="multiple", elem_id="downloads")
                with gr.Accordion("Sampling", open=False):
                    max_new_tokens = gr.Slider(
                        1, 512, value=chat.generation.get("max_new_tokens", 256), step=1, label="max new tokens"
                    )
                    temperature = gr.Slider(
                        0.0,
                        2.0,
                        value=chat.generation.get("temperature", 0.0),
                        step=0.05,
                        label="temperature (0 = greedy)",
                    )
                    top_p = gr.Slider(0.0, 1.0, value=chat.generation.get("top_p", 1.0), step=0.05, label="top p")
        if examples:
            gr.Examples([[p, i] for p, i in examples], inputs=[text, image], label="Examples")

        body = gr.State(None)  # (mesh path, download paths) of the last answer with a body

        def on_send(tab, message, picture, history, tokens, temp, p):
            steps = chat.respond(
                tab, message, picture, history, max_new_tokens=int(tokens), temperature=float(temp), top_p=float(p)
            )
            for now_tab, messages, mesh, files, note in steps:
                yield now_tab, messages, note, "", (mesh, files) if mesh else None

        def show_body(last):
            # The viewer is set after the stream, in its own event: a Model3D updated by a streaming
            # event (gradio 6.31) keeps its old content.
            return (last[0], last[1]) if last else (gr.skip(), gr.skip())

        inputs = [state, text, image, chatbot, max_new_tokens, temperature, top_p]
        outputs = [state, chatbot, status, text, body]
        send.click(on_send, inputs, outputs).then(show_body, [body], [viewer, downloads])
        text.submit(on_send, inputs, outputs).then(show_body, [body], [viewer, downloads])
        reset.click(lambda s: (*chat.reset(s), ""), [state], [state, chatbot, viewer, downloads, status, text])
    return app
