"""`depthda demo` in a real browser: the server as a subprocess on a free loopback port, driven by
Playwright in Debian's Chromium (/usr/bin/chromium, never a downloaded browser). Screenshots go to
a temporary folder (printed; look at them)."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import cv2
import numpy as np
import pytest

from depthda.cli import run
from test_predict import read_video

# A web server driven by a browser (the quick loop leaves it out; CI runs it).
pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
MAX_FRAMES = 6
KITTI_FRAME = "kitti/raw/2011_09_26/2011_09_26_drive_0023_sync/image_02/data/0000000000.png"


def test_demo_without_gradio_says_how_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)  # what `import gradio` meets when it is not installed
    assert run(["demo"]) == 1
    assert capsys.readouterr().err.strip() == "depthda: error: the demo needs Gradio: pip install 'depthda[demo]'"


@pytest.mark.skipif(__import__("importlib").util.find_spec("gradio") is None, reason="gradio is not installed")
def test_demo_bad_options_are_one_line(tmp_path, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cases = {("--port", str(port)): f"cannot serve on 127.0.0.1:{port}",
                 ("--max-frames", "0"): "--max-frames must be at least 1",
                 ("--checkpoint", str(tmp_path / "missing")): "checkpoint folder not found"}
        for args, message in cases.items():
            capsys.readouterr()
            code = run(["demo", *args])
            lines = capsys.readouterr().err.strip().splitlines()
            assert code == 1 and len(lines) == 1 and lines[0].startswith(f"depthda: error: {message}"), lines


def _browser_missing() -> str | None:
    try:
        import gradio  # noqa: F401
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed (pip install '.[test]')"
    if not CHROMIUM.exists():
        return "no /usr/bin/chromium (apt-get install chromium)"
    return None


browser_test = pytest.mark.skipif(_browser_missing() is not None, reason=str(_browser_missing()))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real `depthda demo` process; stopped with Ctrl-C (SIGINT) at the end, which must exit 130."""
    port = _free_port()
    log = tmp_path_factory.mktemp("demo_server") / "server.log"
    tmp = tmp_path_factory.mktemp("demo_tmp")
    env = dict(os.environ, OMP_NUM_THREADS="1", GRADIO_TEMP_DIR=str(tmp_path_factory.mktemp("gradio_tmp")),
               TMPDIR=str(tmp))
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "depthda", "demo", "--port", str(port),
                                 "--max-frames", str(MAX_FRAMES)], stdout=out, stderr=subprocess.STDOUT, env=env,
                                # a test run started in the background inherits SIGINT ignored; Ctrl-C is what is tested
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while f"serving on {url}" not in log.read_text(errors="replace"):
        assert proc.poll() is None, f"demo exited: {log.read_text()}"
        assert time.monotonic() < deadline, f"demo did not start: {log.read_text()}"
        time.sleep(0.5)
    yield url
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130, log.read_text()
    assert [p.name for p in tmp.iterdir() if p.is_dir()] == []  # its results folder went with it


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo_screenshots")
    print(f"\nscreenshots: {folder}")
    return folder


@pytest.fixture
def open_page(browser, server):
    """A page on the demo; every request it makes is recorded, and one leaving 127.0.0.1 fails the test."""
    contexts, requests = [], []

    def _open(width=1280, height=720):
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        context.on("request", lambda r: requests.append(r.url))
        # Anything not for the local server is blocked (and recorded above): the page must not need it.
        context.route(lambda url: urlparse(url).hostname not in ("127.0.0.1", None) and not url.startswith("data:")
                      and not url.startswith("blob:"), lambda route: route.abort())
        page = context.new_page()
        page.set_default_timeout(120_000)
        page.goto(server)
        page.wait_for_selector("#image-in")
        return page

    yield _open
    for c in contexts:
        c.close()
    outside = [u for u in requests if urlparse(u).scheme in ("http", "https", "ws", "wss")
               and urlparse(u).hostname != "127.0.0.1"]
    assert outside == [], f"the page fetched from outside the server: {outside}"
    assert requests, "no requests recorded"


def _upload(page, elem: str, path) -> None:
    clear = page.locator(f"#{elem} button[aria-label='Clear']")
    if clear.count():
        clear.first.click()
    page.locator(f"#{elem} input[type=file]").set_input_files(str(path))


def _fetch(page, url: str) -> bytes:
    response = page.request.get(url)
    assert response.ok, url
    return response.body()


def _predict_image(page, path) -> None:
    _upload(page, "image-in", path)
    page.locator("#image-in img").first.wait_for()
    page.click("#image-go")
    page.locator("#image-info", has_text="points").wait_for()
    page.wait_for_function("document.querySelector('#depth-out img')?.complete && "
                           "document.querySelector('#depth-out img').naturalWidth > 0")


def _wait_for_cloud_drawn(page, shot) -> None:
    """Until the 3D viewer's canvas shows points (not one flat colour); its picture is saved to `shot`."""
    canvas = page.locator("#cloud-out canvas").first
    canvas.wait_for()
    for _ in range(120):
        drawn = cv2.imdecode(np.frombuffer(canvas.screenshot(path=str(shot)), np.uint8), cv2.IMREAD_GRAYSCALE)
        # Below the label and buttons drawn over the canvas, points are what is not the white background.
        if (drawn[50:] < 200).sum() > 0.02 * drawn[50:].size:
            return
        page.wait_for_timeout(500)
    raise AssertionError("the 3D viewer drew nothing")


def _message(page, text: str):
    toast = page.locator(".toast-body", has_text=text).first
    toast.wait_for()
    return toast


@browser_test
def test_image_depth_cloud_and_downloads(open_page, repo_data, shots):
    page = open_page()
    glb_responses = []
    page.on("response", lambda r: glb_responses.append(r.status) if r.url.endswith(".glb") else None)
    _predict_image(page, repo_data / KITTI_FRAME)
    # The coloured depth is shown, and is a picture, not a flat field.
    depth_src = page.locator("#depth-out img").first.get_attribute("src")
    shown = cv2.imdecode(np.frombuffer(_fetch(page, depth_src), np.uint8), cv2.IMREAD_COLOR)
    assert shown.shape[:2] == (375, 1242) and shown.std() > 10
    # Downloads: 16-bit PNG (metres × 256) and NPY (metres), both at the input's size, and agreeing.
    links = page.locator("#depth-files a[download]")
    hrefs = {links.nth(i).get_attribute("download"): links.nth(i).get_attribute("href") for i in range(links.count())}
    assert sorted(hrefs) == ["0000000000_depth_m.npy", "0000000000_depth_m256.png"]
    png16 = cv2.imdecode(np.frombuffer(_fetch(page, hrefs["0000000000_depth_m256.png"]), np.uint8), cv2.IMREAD_UNCHANGED)
    metres = np.load(__import__("io").BytesIO(_fetch(page, hrefs["0000000000_depth_m.npy"])))
    assert png16.dtype == np.uint16 and png16.shape == metres.shape == (375, 1242)
    assert np.abs(png16 / 256.0 - metres).max() <= 1 / 512 + 1e-6
    assert 0.5 <= metres.min() and metres.max() <= 80 and metres[300:, 450:800].mean() < metres[:100].mean()
    # The 3D viewer fetched the GLB and draws it on a canvas.
    page.locator("#cloud-out canvas").wait_for()
    for _ in range(120):
        if glb_responses:
            break
        page.wait_for_timeout(250)
    assert glb_responses and all(s == 200 for s in glb_responses)
    _wait_for_cloud_drawn(page, shots / "cloud_1280x720.png")
    page.screenshot(path=str(shots / "image_1280x720.png"), full_page=True)


@browser_test
def test_bad_inputs_give_messages_and_the_server_keeps_serving(open_page, repo_data, tmp_path, shots):
    page = open_page()
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"this is not a picture\n" * 50)
    _upload(page, "image-in", broken)
    page.click("#image-go")
    _message(page, "not an image")
    page.screenshot(path=str(shots / "bad_image.png"), full_page=True)
    huge = tmp_path / "huge.png"
    cv2.imwrite(str(huge), np.zeros((10_000, 10_000), np.uint8))  # 100 megapixels, a few hundred KB
    _upload(page, "image-in", huge)
    page.click("#image-go")
    _message(page, "100 megapixels")
    # The server still works.
    _predict_image(page, repo_data / KITTI_FRAME)
    page.locator("#depth-out img").first.wait_for()
    # A corrupt video: a message, and the server carries on.
    page.get_by_role("tab", name="Video").click()
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4000))
    _upload(page, "video-in", corrupt)
    page.click("#video-go")
    assert "/" not in _message(page, "cannot decode video").inner_text()  # the file's name, not the server's path
    page.screenshot(path=str(shots / "bad_video.png"), full_page=True)


@browser_test
def test_video_gives_a_playable_depth_video(open_page, repo_data, tmp_path, shots):
    clip = repo_data / "samples" / "dashcam_3s.mp4"  # H.264, which the browser plays; longer than --max-frames
    page = open_page()
    page.get_by_role("tab", name="Video").click()
    _upload(page, "video-in", clip)
    page.get_by_label("side by side (clip | depth)").check()
    page.click("#video-go")
    page.locator("#video-info", has_text="frames").wait_for()
    assert f"first {MAX_FRAMES}" in page.locator("#video-info").inner_text()  # the limit is explained
    src = page.locator("#video-out video").first.get_attribute("src")
    out = tmp_path / "depth.mp4"
    out.write_bytes(_fetch(page, src))
    frames, _ = read_video(out)  # RGB frames, read back by OpenCV
    assert len(frames) == MAX_FRAMES
    assert frames[0].shape == (540, 1920, 3)  # side by side: clip | depth
    assert frames[-1][:, 960:].std() > 10
    page.screenshot(path=str(shots / "video_1280x720.png"), full_page=True)


@browser_test
def test_phone_width(open_page, repo_data, shots):
    page = open_page(390, 844)
    _predict_image(page, repo_data / KITTI_FRAME)
    box = page.locator("#depth-out img").first.bounding_box()
    assert box["width"] > 200 and box["x"] >= 0 and box["x"] + box["width"] <= 390  # fits the screen
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
    _wait_for_cloud_drawn(page, shots / "cloud_390x844.png")
    page.screenshot(path=str(shots / "image_390x844.png"))  # the viewport (a full-page capture blanks WebGL)
