"""`chatpose-web`: ChatPose in the browser (gradio), over the same model and session code as `chatpose-chat`."""
