"""chatpose-web: the page's logic on bad input (in this process), then the page in a real browser.

The browser test drives headless Chromium (Debian's `chromium` and `chromium-driver`, through selenium)
against the app served on 127.0.0.1: a text-to-pose prompt gives an answer and a body in the viewer,
then an uploaded image and a second prompt give a second body; a screenshot lands in the test's folder.
Without the two packages the test fails and names them (`.ci/run` installs them).
"""

import shutil
import socket
import time

import numpy as np
import pytest
from PIL import Image

from tests import chat_fixtures

pytestmark = pytest.mark.slow  # make test-fast leaves this file out (make test runs it)

BROWSER_PACKAGES = "chromium chromium-driver"


@pytest.fixture(scope="module")
def chat(tmp_path_factory):
    from chatpose_jax.inference.session import ChatModel
    from chatpose_jax.web.app import WebChat

    model = ChatModel.load(chat_fixtures.pose_checkpoint(tmp_path_factory))
    return WebChat(model, str(tmp_path_factory.mktemp("web_out")), max_new_tokens=8)


def drain(steps):
    return list(steps)[-1]


def test_a_text_to_pose_turn_writes_the_body_and_its_downloads(chat):
    tab, history, mesh, files, status = drain(chat.respond(None, chat_fixtures.POSE_PROMPT, None, []))
    assert [m["role"] for m in history] == ["user", "assistant"] and "<POSE>" in history[-1]["content"]
    assert mesh.endswith("turn_1.obj") and sorted(f.rsplit(".", 1)[1] for f in files) == ["npz", "obj"]
    assert status == "Body written: turn_1.obj"
    npz = np.load(files[0] if files[0].endswith(".npz") else files[1])
    assert npz["global_orient"].shape[-1] == 3 and npz["body_pose"].shape[-1] == 69
    _, history, *_ = chat.reset(tab)
    assert history == [] and tab.session.history == []


def test_the_image_the_widget_still_holds_does_not_restart_the_conversation(chat, tmp_path):
    picture = tmp_path / "person.png"
    Image.fromarray(np.full((64, 48, 3), 128, np.uint8)).save(picture)
    tab, history, *_ = drain(chat.respond(None, "what is the pose?", str(picture), []))
    tab, history, *_ = drain(chat.respond(tab, "and now?", str(picture), history))
    assert len(history) == 4 and len(tab.session.history) == 2  # both turns kept, one image
    other = tmp_path / "other.png"
    Image.fromarray(np.zeros((64, 48, 3), np.uint8)).save(other)
    tab, history, *_ = drain(chat.respond(tab, "this one?", str(other), history))
    assert len(history) == 2 and len(tab.session.history) == 1  # a new image restarts it


def test_bad_image_and_long_prompt_are_messages_and_the_conversation_goes_on(chat, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    tab, history, mesh, files, status = drain(chat.respond(None, "hello", str(broken), []))
    assert status.startswith(f"Image not used: cannot read image {broken}") and history == [] and mesh is None
    too_long = "pose " * (chat.model.context_length + 10)
    tab, history, _, _, status = drain(chat.respond(tab, too_long, None, history))
    assert "Reset starts a new conversation" in status and history == [] and tab.session.history == []
    tab, history, *_ = drain(chat.respond(tab, chat_fixtures.POSE_PROMPT, None, history))
    assert len(history) == 2 and len(tab.session.history) == 1


def test_an_answer_without_pose_says_there_is_no_body(chat, monkeypatch):
    params = {k: v for k, v in chat.model.params.items() if k != "pose_head"}
    monkeypatch.setattr(chat.model, "params", params)
    monkeypatch.setattr(chat.model, "stream", _answer_without_pose(chat.model))
    *_, mesh, files, status = drain(chat.respond(None, "describe the weather", None, []))
    assert mesh is None and files == []
    assert status == "The answer holds no <POSE>: no body (this checkpoint has no pose head)."


def _answer_without_pose(model):
    from chatpose_jax.inference.session import Answer

    def stream(ids, pixel_values=None, on_text=None, **kwargs):
        if on_text:
            on_text("It is sunny.")
        return Answer("It is sunny.", np.zeros(0, np.int32), (), len(ids), "eos")

    return stream


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_the_page_in_a_browser_shows_a_body_for_text_then_for_an_image(chat, tmp_path):
    missing = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    if missing:
        pytest.fail(
            f"the browser test needs Debian's {BROWSER_PACKAGES} ({', '.join(missing)} not found): "
            f"apt-get install -y {BROWSER_PACKAGES}"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from chatpose_jax.web.app import build_app

    port = free_port()
    app = build_app(chat, [(chat_fixtures.POSE_PROMPT, None)])
    app.queue().launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, allowed_paths=[chat.out_dir], quiet=True
    )
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    # WebGL for the viewer without a GPU: SwiftShader, Chromium's software renderer.
    browser_args = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000")
    browser_args += ("--use-angle=swiftshader", "--enable-unsafe-swiftshader")
    for arg in browser_args:
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.get(f"http://127.0.0.1:{port}")
        wait = WebDriverWait(driver, 120)
        status = lambda: driver.find_element(By.CSS_SELECTOR, "#status textarea").get_attribute("value")  # noqa: E731

        box = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#message textarea")))
        box.send_keys(chat_fixtures.POSE_PROMPT)
        driver.find_element(By.CSS_SELECTOR, "#send").click()
        wait.until(lambda d: status().startswith("Body written"))
        assert status() == "Body written: turn_1.obj"
        assert "<POSE>" in driver.find_element(By.CSS_SELECTOR, "#chat").text
        viewer_file = lambda: [  # noqa: E731
            a.get_attribute("download") for a in driver.find_elements(By.CSS_SELECTOR, "#viewer a[download]")
        ]
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#viewer canvas") and viewer_file() == ["turn_1.obj"])

        picture = tmp_path / "person.png"
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 64, 3), dtype=np.uint8)).save(picture)
        driver.find_element(By.CSS_SELECTOR, "#image input[type=file]").send_keys(str(picture))
        time.sleep(1)
        box = driver.find_element(By.CSS_SELECTOR, "#message textarea")
        box.send_keys(chat_fixtures.POSE_PROMPT)
        driver.find_element(By.CSS_SELECTOR, "#send").click()
        wait.until(lambda d: status().startswith("Body written: turn_2"))
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#viewer canvas") and viewer_file() == ["turn_2.obj"])
        driver.save_screenshot(str(tmp_path / "chatpose_web.png"))
        assert (tmp_path / "chatpose_web.png").stat().st_size > 10_000
    finally:
        driver.quit()
        app.close()


def test_cli_names_a_missing_checkpoint_and_the_demo_prints_a_command_it_parses(tmp_path):
    import io
    import shlex

    from chatpose_jax.demo.run import web_command
    from tests.cli_in_process import fresh_cli, parse, run_tool

    out = io.StringIO()
    assert run_tool(["chatpose-web", f"--checkpoint={tmp_path / 'nope'}"], out) == 1
    assert str(tmp_path / "nope") in out.getvalue() and "Traceback" not in out.getvalue()
    words = shlex.split(web_command(tmp_path / "demo", {"body_model": "/d/SMPL_NEUTRAL.pkl"}), comments=True)
    assert words[0] == "chatpose-web"
    with fresh_cli("chatpose_jax.cli.web") as web:
        parse(*words[1:])
        assert web._CHECKPOINT.value == str(tmp_path / "demo" / "train") and web._PORT.value == 7860


def test_examples_come_from_the_training_data_held_out_captions_and_crops(tmp_path_factory, tmp_path):
    from chatpose_jax.web.examples import data_examples
    from data_pipelines import templates
    from tests.data_synth_cache import synthetic_data

    found = data_examples(synthetic_data(tmp_path_factory)["data_dir"], str(tmp_path), count=2)
    texts = [p for p, image in found if image is None]
    shots = [(p, image) for p, image in found if image is not None]
    assert len(texts) == 2 and len(shots) == 2
    assert all(t.startswith(templates.TEXT_TO_POSE_QUESTIONS[0].split("{description}")[0]) for t in texts)
    for prompt, image in shots:
        assert prompt == templates.IMAGE_TO_POSE_QUESTIONS[0]
        pixels = np.asarray(Image.open(image))
        assert pixels.shape[2] == 3 and pixels.std() > 1  # a real crop, not a black square
    assert data_examples(str(tmp_path / "empty"), str(tmp_path / "out")) == []
    # Person crops prepared by older builders (hmr_images 2.0.0, without keypoints_2d) give no examples.
    old = tmp_path / "old"
    shutil.copytree(synthetic_data(tmp_path_factory)["data_dir"], old)
    (old / "hmr_images" / "default" / "2.1.0").rename(old / "hmr_images" / "default" / "2.0.0")
    found = data_examples(str(old), str(tmp_path / "old_out"), count=2)
    assert len(found) == 2 and all(image is None for _, image in found)
