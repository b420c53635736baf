"""The `depthda demo` web app: `build_app(...)` → a Gradio Blocks over depthda's Python API.

Imported only when Gradio is installed (the `demo` extra); `depthda demo` says how to install it
otherwise. Offline by construction: Gradio's analytics and version check are off (set before
Gradio is imported), no share link, no server-side rendering, and the theme uses system fonts, so
the page loads nothing from outside the server (tests/test_demo.py watches every request).
"""

from __future__ import annotations

import logging
import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # read by gradio at import: no usage reports, no version check

import shutil
import tempfile
import time
from pathlib import Path

import cv2
import gradio as gr
import numpy as np
from PIL import Image

from depthda.cli.demo_settings import DemoSettings
from depthda.errors import DepthdaError
from depthda.infer.colorize import DEFAULT_CMAP, DepthColorizer
from depthda.infer.pipeline import DepthPipeline
from depthda.infer.pointcloud import CloudOptions, write_cloud
from depthda.infer.local_predict import run_video, write_depth
from depthda.infer.temporal import TemporalFilter
from depthda.infer.video_io import CPU_DECODER, CPU_ENCODER, VideoReader, VideoWriter
from depthda.paths import sample_video, shipped
from depthda.utils.fsio import atomic_path
from depthda.utils.images import read_rgb

MODEL_CHOICES = ("default", "depth network only")
CMAPS = ("magma", "inferno", "viridis", "plasma", "turbo")
MAX_PIXELS = 40_000_000  # larger uploads are refused: a 100-megapixel photo would hold the one CPU job for minutes
CLOUD_POINTS = 250_000   # the 3D viewer's cloud is thinned to about this many points (a browser stays smooth)
KEEP_RESULTS = 8         # result folders kept on disk; older ones are deleted as new requests arrive
# The 3D viewer's orbit camera (alpha, beta in degrees, radius): behind and a little above the real
# camera, looking the way it looked (the GLB is y-up, see depthda.infer.pointcloud); radius fits the cloud.
CAMERA = (90, 80, None)
SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]
SYSTEM_MONO = ["ui-monospace", "monospace"]


class Models:
    """The pipeline with and without its style stage, each loaded once, on first use."""

    def __init__(self, settings: DemoSettings):
        self.settings = settings
        self._loaded: dict[bool, DepthPipeline] = {}

    def get(self, choice: str) -> DepthPipeline:
        use_style = choice != MODEL_CHOICES[1]
        if use_style not in self._loaded:
            self._loaded[use_style] = DepthPipeline.from_checkpoint(self.settings.checkpoint, device=self.settings.device,
                                                                    use_style=use_style)
        return self._loaded[use_style]


def checked_upload(image: gr.Image) -> gr.Image:
    """`image` with its upload checked before any work: a file that is not an image, or a huge one,
    is a message on the page instead of a server error. Wraps the instance's preprocess (Gradio
    calls it on the instance); a gr.Image subclass would make Gradio write a .pyi beside this file."""
    original = image.preprocess

    def preprocess(payload):
        try:
            path = original(payload)
        except Exception:  # PIL's many ways of saying "not an image"
            raise gr.Error("That file is not an image depthda can read (try PNG or JPEG).") from None
        if path is not None:
            with Image.open(path) as im:
                w, h = im.size
            if w * h > MAX_PIXELS:
                raise gr.Error(f"The image is {w}×{h} ({w * h / 1e6:.0f} megapixels); the demo takes up to "
                               f"{MAX_PIXELS / 1e6:.0f} megapixels. Scale it down first.")
        return path

    image.preprocess = preprocess
    return image


class Results:
    """A folder per request under `root`; only the newest KEEP_RESULTS are kept."""

    def __init__(self, root: Path):
        self.root = root

    def new(self) -> Path:
        old = sorted(self.root.iterdir(), key=lambda p: p.stat().st_mtime)
        for folder in old[:max(0, len(old) - KEEP_RESULTS + 1)]:
            shutil.rmtree(folder, ignore_errors=True)
        return Path(tempfile.mkdtemp(dir=self.root))


def _focal(value) -> float | None:
    return float(value) if value not in (None, "") and float(value) > 0 else None


def _colorizer(pipe: DepthPipeline, cmap: str, near, far) -> DepthColorizer:
    near = near or pipe.depth_param.min_depth
    far = far or pipe.depth_param.max_depth
    return DepthColorizer(float(near), float(far), cmap)


def _without_server_paths(message: str, args) -> str:
    """The uploaded files' names in place of where the server keeps them."""
    for arg in args:
        if isinstance(arg, str) and os.sep in arg:
            message = message.replace(arg, Path(arg).name)
    return message


def _page_errors(fn):
    """Bad input becomes one message on the page (gr.Error); the server carries on."""
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except DepthdaError as exc:
            raise gr.Error(_without_server_paths(str(exc), args)) from None
        except (cv2.error, OSError, ValueError) as exc:
            raise gr.Error(_without_server_paths(f"could not process this input: {exc}", args)) from None
    wrapped.__name__ = fn.__name__
    return wrapped


def image_examples() -> list[str]:
    """Shipped pictures for the examples row: a dash-cam frame (always), and in a source checkout
    a KITTI frame and one of the paper's examples (licences: data/README.md, tests/data/README.md)."""
    out = []
    frame_path = Path(tempfile.gettempdir()) / "depthda-demo-dashcam.png"
    if not frame_path.exists():
        cap = cv2.VideoCapture(str(sample_video()))
        ok, frame = cap.read()
        cap.release()
        if ok:
            cv2.imwrite(str(frame_path), frame)
    if frame_path.exists():
        out.append(str(frame_path))
    for relative in ("data/kitti/raw/2011_09_26/2011_09_26_drive_0023_sync/image_02/data/0000000000.png",
                     "tests/data/paper_examples/1.png"):
        try:
            out.append(str(shipped(relative)))
        except DepthdaError:
            pass
    return out


def build_app(settings: DemoSettings, workdir: Path) -> tuple[gr.Blocks, dict]:
    """The Blocks app, writing its results under `workdir`, and the keyword arguments its launch()
    needs (theme; Gradio 6 takes them there)."""
    models = Models(settings)
    default = models.get(MODEL_CHOICES[0])  # a bad checkpoint fails here, before the server starts
    results = Results(Path(workdir))
    near0, far0 = default.depth_param.min_depth, default.depth_param.max_depth

    @_page_errors
    def depth_image(path, choice, focal, cmap, near, far):
        if path is None:
            raise gr.Error("Upload an image first (or pick an example).")
        pipe = models.get(choice)
        rgb = read_rgb(path)
        focal = _focal(focal)
        depth = pipe(rgb, focal_px=focal)
        colour = _colorizer(pipe, cmap, near, far)(depth)
        folder = results.new()
        stem = Path(path).stem
        files = [folder / f"{stem}_depth_m256.png", folder / f"{stem}_depth_m.npy"]
        write_depth(files[0], depth, "png16")
        write_depth(files[1], depth, "npy")
        h, w = depth.shape
        stride = max(1, int(np.ceil(np.sqrt(h * w / CLOUD_POINTS))))
        cloud = pipe.cloud_of(rgb, depth, focal, CloudOptions(stride=stride))
        glb = folder / f"{stem}_cloud.glb"
        write_cloud(glb, cloud)
        source = "as given" if focal else "the training camera's field of view"
        info = (f"{w}×{h} px · focal length {cloud.intrinsics.fx:.1f} px ({source}) · "
                f"depth {depth.min():.1f}–{depth.max():.1f} m · {len(cloud):,} points (stride {stride}, sky left out)")
        return colour, [str(f) for f in files], str(glb), info

    @_page_errors
    def depth_video(path, choice, focal, cmap, near, far, smooth, sbs, progress=gr.Progress()):
        if path is None:
            raise gr.Error("Upload a video first (or pick the example).")
        pipe = models.get(choice)
        reader = VideoReader(path, max_frames=settings.max_frames, **CPU_DECODER)
        try:
            info = reader.info
            total = min(info.frame_count, settings.max_frames) if info.frame_count else settings.max_frames
            note = ""
            if info.frame_count > settings.max_frames:
                note = (f"The clip has {info.frame_count} frames; this demo makes depth for the first "
                        f"{settings.max_frames} (start it with --max-frames N for more).")
                gr.Warning(note)
            out = results.new() / f"{Path(path).stem}_depth.mp4"
            progress(0, desc="depth", total=total, unit="frames")
            with atomic_path(out) as tmp:
                with VideoWriter(tmp, info.width * (2 if sbs else 1), info.height, info.fps, **CPU_ENCODER) as writer:
                    def write(frame):
                        writer.write(frame)
                        progress((writer.frames_written, total), desc="depth", unit="frames")

                    run_video(reader, write, pipeline=pipe, run=pipe.run_prepared,
                              colorizer=_colorizer(pipe, cmap, near, far), batch_size=1, sbs=sbs,
                              focal_px=_focal(focal), temporal=TemporalFilter() if smooth else None)
                    writer.close()
            done = f"{writer.frames_written} frames, {info.width}×{info.height}, {info.fps:.3g} fps" + (
                f". {note}" if note else "")
            return str(out), done
        finally:
            reader.close()

    with gr.Blocks(title="depthda", analytics_enabled=False) as app:
        gr.Markdown("## depthda — monocular depth\nDepth in metres from one picture or a clip, on this machine. "
                    "Near is bright.")
        with gr.Row():
            model = gr.Dropdown(list(MODEL_CHOICES), value=MODEL_CHOICES[0], label="model (style transfer + depth, "
                                "or depth alone)", min_width=200)
            focal = gr.Number(0, label="focal length, px (0: the training camera's field of view)", minimum=0,
                              min_width=200)
            cmap = gr.Dropdown(list(CMAPS), value=DEFAULT_CMAP, label="colour map", min_width=120)
            near = gr.Number(near0, label="range: near (m)", min_width=100)
            far = gr.Number(far0, label="range: far (m)", min_width=100)
        controls = [model, focal, cmap, near, far]
        with gr.Tab("Image"):
            with gr.Row():
                image_in = checked_upload(gr.Image(type="filepath", label="image (upload, drop or paste)",
                                                   sources=["upload", "clipboard"], elem_id="image-in"))
                depth_out = gr.Image(label="depth", type="numpy", format="png", interactive=False,
                                     elem_id="depth-out")
            image_go = gr.Button("Predict depth", variant="primary", elem_id="image-go")
            image_info = gr.Markdown(elem_id="image-info")
            with gr.Row():
                cloud_out = gr.Model3D(label="3D points (drag to turn)", elem_id="cloud-out", height=420,
                                       camera_position=CAMERA)
                files_out = gr.File(label="depth: 16-bit PNG (metres×256) and NPY (metres)", file_count="multiple",
                                    elem_id="depth-files")
            gr.Examples(image_examples(), inputs=image_in, label="examples")
            image_go.click(depth_image, [image_in, *controls], [depth_out, files_out, cloud_out, image_info])
        with gr.Tab("Video"):
            with gr.Row():
                video_in = gr.Video(label=f"clip (first {settings.max_frames} frames)", sources=["upload"],
                                    elem_id="video-in")
                video_out = gr.Video(label="depth video", interactive=False, elem_id="video-out")
            with gr.Row():
                smooth = gr.Checkbox(True, label="temporal filter (steadier depth)")
                sbs = gr.Checkbox(False, label="side by side (clip | depth)")
            video_go = gr.Button("Predict depth video", variant="primary", elem_id="video-go")
            video_info = gr.Markdown(elem_id="video-info")
            gr.Examples([str(sample_video())], inputs=video_in, label="example")
            video_go.click(depth_video, [video_in, *controls, smooth, sbs], [video_out, video_info])
    app.queue(default_concurrency_limit=1)  # one job at a time on a CPU; the rest wait their turn
    theme = gr.themes.Default(font=SYSTEM_FONTS, font_mono=SYSTEM_MONO)
    return app, dict(theme=theme)


def serve(host: str = "127.0.0.1", port: int = 7860, settings: DemoSettings = DemoSettings(),
          on_ready=print) -> None:
    """Build the app, serve it until Ctrl-C; `on_ready(url)` is told where."""
    with tempfile.TemporaryDirectory(prefix="depthda-demo-") as workdir:
        _serve(build_app(settings, Path(workdir)), host, port, on_ready)


def _serve(built: tuple[gr.Blocks, dict], host: str, port: int, on_ready) -> None:
    app, launch_kwargs = built
    # The server's own "ERROR: [Errno ...]" line would precede depthda's one line (a filter, as the
    # server sets its logger's level itself when it starts).
    server_log, quiet = logging.getLogger("uvicorn.error"), (lambda record: False)
    server_log.addFilter(quiet)
    try:
        app.launch(server_name=host, server_port=port, share=False, inbrowser=False, quiet=True, show_error=True,
                   ssr_mode=False, pwa=False, mcp_server=False, enable_monitoring=False, prevent_thread_lock=True,
                   max_file_size="500mb", footer_links=[], **launch_kwargs)
    except OSError as exc:  # gradio's message names its own environment variable and launch() argument
        raise DepthdaError(f"cannot serve on {host}:{port} (in use, or not an address of this machine): "
                           "choose another --port or --host") from exc
    finally:
        server_log.removeFilter(quiet)
    try:
        on_ready(f"http://{host}:{port}")
        while True:  # not app.block_thread(): it swallows Ctrl-C, which must reach the CLI (exit 130)
            time.sleep(1)
    finally:
        app.close()
