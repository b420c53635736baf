# depthda on a CUDA PyTorch runtime. Build: docker build -t depthda .
# Run:   docker run --gpus all -v /path/to/kitti:/data/kitti -v $PWD/outputs:/outputs depthda \
#          predict /opt/depthda/data/samples/dashcam_3s.mp4 -o /outputs/depth.mp4
# The base image's Python is 3.11 and its torch 2.5.1, within pyproject's floors.
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
WORKDIR /opt/depthda
COPY pyproject.toml README.md ./
COPY depthda ./depthda
COPY checkpoints ./checkpoints
COPY data ./data
# A regular (non-editable) install, as from a package index: the wheel carries the default model,
# the sample clip and the split lists. torch comes from the base image; pyproject's range accepts
# it, so pip keeps it. /opt/depthda/data stays for the example paths of docs/inference.md (Docker).
RUN pip install .

VOLUME ["/data", "/outputs"]
WORKDIR /outputs
ENTRYPOINT ["depthda"]
CMD ["--help"]
