"""ONNX export: the network alone, or with decoding, scoring and class-aware NMS in the graph.

    python -m yolo.export CKPT --onnx OUT.onnx                  # raw outputs out32, out16, out8
    python -m yolo.export CKPT --onnx OUT.onnx --nms            # final detections from one call
    python -m yolo.export CKPT --onnx OUT.onnx --nms --dynamic-batch --image-size 416

CKPT is anything ``yolo.weights.read_checkpoint`` opens (a training checkpoint, exported
weights, a course checkpoint, a Darknet .weights file). The graph's input ``images`` is
(B, 3, S, S) float RGB in [0, 1], letterboxed to S (``yolo.detect`` does that); B is 1 unless
``--dynamic-batch``. Without ``--nms`` the outputs are the model's three raw tensors
(B, 3, S/32, S/32, 5 + C) ... With ``--nms`` the graph has a second input ``sizes`` (B, 2) int64,
the (height, width) of each ORIGINAL image (``run_onnx`` passes (S, S), no letterbox, when given
none), and its outputs are the detections of the whole batch, best score first, as the Detector
computes them (``Detector.predict(image).select(...)``):

    image (Tensor[K]) int64   the image of the batch each detection belongs to
    boxes (Tensor[K, 4])      (x1, y1, x2, y2) pixels of the ORIGINAL image, clipped to it
    scores (Tensor[K])        sigmoid(objectness) * max softmax(class logits)
    labels (Tensor[K]) int64  class index

The file's metadata_props hold class_names, anchors and image_size (JSON). The confidence
threshold, NMS IoU, pre-NMS top-k and max detections per image are fixed at export (``--conf``,
``--iou``, ``--top-k``, ``--max-det``). Boxes are clipped by the Detector's one rule: mapped back
through each image's letterbox (``yolo.letterbox.letterbox_params`` computed in the graph, in
float64, from ``sizes``) and clipped to the original image, never to the padded square; then ONNX
NonMaxSuppression (opset >= 11) runs with its own batching: boxes (B, k, 4) and one score row per
class (B, C, k), so each (image, class) is suppressed alone, with no coordinate offset to round
(the library's ``select`` does the same with exact float64 offsets, ``grouped_nms``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from yolo.argtypes import OutputError, image_size, integer, output_file, publish, real, write_message
from yolo.config import DEFAULT_IMAGE_SIZE, MAX_IMAGE_SIZE, STRIDES, PostprocessConfig
from yolo.postprocess import grouped_nms
from yolo.targets import decode_cells, unravel_cells
from yolo.weights import CheckpointError, build_model, read_checkpoint

OPSET = 17
MAX_OPSET = 20  # the TorchScript exporter's newest (torch.onnx._constants); NonMaxSuppression needs >= 11
MAX_CANDIDATES = 100_000  # --top-k, --max-det: per image; the model has 10,647 candidates at 416, 22,743 at 608
RAW_OUTPUTS = ("out32", "out16", "out8")
NMS_OUTPUTS = ("image", "boxes", "scores", "labels")
NMS_INPUTS = ("images", "sizes")


def stable_order(key: Tensor, descending: bool = False) -> Tensor:
    """Indices that sort ``key`` (Tensor[N]), equal keys in their input order.

    The exporter has no ``stable=True`` sort; a plain one becomes ONNX ``TopK``, whose ties go
    to the lower index (ONNX spec; checked for ONNX Runtime), i.e. stable too."""
    if torch.onnx.is_in_onnx_export():
        return torch.sort(key, descending=descending).indices
    return torch.sort(key, descending=descending, stable=True).indices


class BatchedNMS(torch.autograd.Function):
    """Per-(image, class) NMS: ONNX ``NonMaxSuppression`` in the graph, ``grouped_nms`` in PyTorch.

    ``apply(boxes (Tensor[B, k, 4]) xyxy, scores (Tensor[B, C, k]), iou_threshold, score_threshold)``
    -> selected (Tensor[n, 3]) int64 rows (image, class, box index), like ONNX's ``selected_indices``:
    within each (image, class) the boxes whose score is > score_threshold (ONNX Runtime's rule,
    measured; the spec's text reads ">="), suppressed where IoU > iou_threshold,
    every box of a class kept if it survives (max_output_boxes_per_class = k). Each group is
    suppressed alone (no coordinate offset), so the result does not depend on the other groups.
    The eager forward is the library's exact ``yolo.postprocess.grouped_nms``, so PyTorch and ONNX
    Runtime select the same boxes (up to float32 IoU ties at the threshold); its rows come by
    image, class, then decreasing score, as ONNX Runtime orders them.
    """

    @staticmethod
    def forward(ctx, boxes: Tensor, scores: Tensor, iou_threshold: float, score_threshold: float) -> Tensor:
        image, cls, box = torch.nonzero(scores > score_threshold, as_tuple=True)
        kept = grouped_nms(boxes[image, box], scores[image, cls, box], image * scores.shape[1] + cls, iou_threshold)
        selected = torch.stack((image, cls, box), 1)[kept]  # by decreasing score
        group = selected[:, 0] * scores.shape[1] + selected[:, 1]
        return selected[torch.sort(group, stable=True).indices]

    @staticmethod
    def symbolic(g, boxes, scores, iou_threshold: float, score_threshold: float):
        max_per_class = g.op("Shape", boxes)  # (B, k, 4): keep up to k boxes of a class
        max_per_class = g.op("Gather", max_per_class, g.op("Constant", value_t=torch.tensor([1])), axis_i=0)
        return g.op("NonMaxSuppression", boxes, scores, max_per_class,
                    g.op("Constant", value_t=torch.tensor([iou_threshold], dtype=torch.float32)),
                    g.op("Constant", value_t=torch.tensor([score_threshold], dtype=torch.float32)))


class DetectionGraph(nn.Module):
    """YOLOv3 + decode + score + pre-NMS top-k + class-aware NMS + max detections per image.

    ``forward(images (B, 3, S, S))`` -> image (K,), boxes (K, 4), scores (K,), labels (K,): see the
    module docstring. Written with shapes fixed by S and only B free, so it traces to ONNX.
    """

    def __init__(self, model: nn.Module, image_size: int, anchors: Sequence,
                 config: PostprocessConfig, top_k: int = 1000) -> None:
        super().__init__()
        self.model = model
        self.config, self.top_k, self.image_size = config, top_k, image_size
        for stride, scale_anchors in zip(STRIDES, anchors):
            size = image_size // stride
            _, anchor, row, col = unravel_cells(torch.arange(3 * size * size), 3, size)  # one image
            self.register_buffer(f"cells{stride}", torch.stack([col, row]), persistent=False)
            wh = torch.as_tensor(scale_anchors, dtype=torch.float32)[anchor]  # (3*S*S, 2)
            self.register_buffer(f"anchors{stride}", wh, persistent=False)

    def decode(self, outputs: list[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """Raw outputs -> boxes (B, M, 4), scores (B, M), labels (B, M), with ``decode_cells``."""
        boxes, scores, labels = [], [], []
        for out, stride in zip(outputs, STRIDES):
            b, _, size, _, channels = out.shape
            rows = out.reshape(-1, channels).float()  # (B*3*S*S, 5+C), one image after another
            col, row = getattr(self, f"cells{stride}").repeat(1, b)
            anchor_wh = getattr(self, f"anchors{stride}").repeat(b, 1)
            boxes.append(decode_cells(rows, col, row, anchor_wh, stride, size).reshape(b, -1, 4))
            prob, label = rows[:, 5:].softmax(dim=1).max(dim=1)
            scores.append((rows[:, 0].sigmoid() * prob).reshape(b, -1))
            labels.append(label.reshape(b, -1))
        return torch.cat(boxes, 1), torch.cat(scores, 1), torch.cat(labels, 1)

    def to_original(self, boxes: Tensor, sizes: Tensor) -> Tensor:
        """Boxes (B, k, 4) in input pixels -> pixels of each original image (h, w) in ``sizes``
        (B, 2), clipped to it: ``letterbox_params`` and ``boxes_from_letterbox`` in graph ops
        (the parameters in float64 as Python computes them; round half to even as ``round``)."""
        side = float(self.image_size)
        hw = sizes.to(torch.float64)  # (B, 2)
        scale = side / hw.max(dim=1, keepdim=True).values  # (B, 1)
        new = torch.round(hw * scale).clamp(min=1.0)  # (B, 2): new h, new w
        pad = torch.floor((side - new) / 2).flip(1).to(torch.float32)  # (B, 2): pad_x, pad_y
        xy = (boxes.reshape(boxes.shape[0], -1, 2, 2) - pad[:, None, None]) / scale.to(torch.float32)[:, None, None]
        upper = hw.flip(1).to(torch.float32)[:, None, None]  # (B, 1, 1, 2): w, h
        return torch.minimum(xy.clamp(min=0.0), upper).reshape(boxes.shape)

    def forward(self, images: Tensor, sizes: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        boxes, scores, labels = self.decode(self.model(images))
        b, m = scores.shape
        if sizes is None:  # no letterbox: the originals are the S x S inputs
            sizes = torch.full((b, 2), self.image_size, dtype=torch.int64, device=images.device)
        scores, best = scores.topk(min(self.top_k, m), dim=1)  # (B, k), best first
        boxes = self.to_original(boxes.gather(1, best[..., None].expand(-1, -1, 4)), sizes)  # (B, k, 4)
        labels = labels.gather(1, best)  # (B, k)
        conf = self.config.conf_threshold
        scores = scores * (scores > conf)  # 0 at or below the threshold: dropped by NMS under > or >=
        if self.config.class_agnostic:
            by_class = scores[:, None]  # (B, 1, k)
        else:  # (B, C, k): each candidate's score in its own class row, 0 in the others
            classes = torch.arange(self.num_classes, device=images.device)
            by_class = scores[:, None] * (labels[:, None] == classes[None, :, None])
        selected = BatchedNMS.apply(boxes, by_class, self.config.iou_threshold, conf)  # (n, 3): image, class, box
        image, rows = selected[:, 0], selected[:, 0] * scores.shape[1] + selected[:, 2]
        boxes, scores, labels = boxes.reshape(-1, 4)[rows], scores.reshape(-1)[rows], labels.reshape(-1)[rows]
        # best first within each image: two stable sorts
        order = stable_order(scores, descending=True)
        order = order[stable_order(image[order])]
        image, boxes, scores, labels = image[order], boxes[order], scores[order], labels[order]
        # at most max_detections per image: rank of each detection within its image
        mine = (image[:, None] == torch.arange(b, device=images.device)[None]).long()  # (K, B)
        rank = (mine.cumsum(0) * mine).sum(1)
        keep = rank <= self.config.max_detections
        return image[keep], boxes[keep], scores[keep], labels[keep]

    @property
    def num_classes(self) -> int:
        return self.model.num_classes


def export_onnx(model: nn.Module, path: str | Path, image_size: int = 416, anchors: Sequence | None = None,
                nms_in_graph: bool = False, dynamic_batch: bool = False,
                config: PostprocessConfig | None = None, top_k: int = 1000, opset: int = OPSET,
                metadata: dict | None = None) -> Path:
    """Write ``model`` (eval mode, CPU) as ONNX; see the module docstring for inputs and outputs.

    ``metadata``: plain values stored JSON-encoded in the file's metadata_props (``main`` stores
    class_names, anchors, image_size), so a runtime can name the labels."""
    from yolo.config import ANCHORS

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    graph: nn.Module = model
    names = RAW_OUTPUTS
    if nms_in_graph:
        graph = DetectionGraph(model, image_size, anchors or ANCHORS, config or PostprocessConfig(), top_k).eval()
        names = NMS_OUTPUTS
    axes = None
    inputs = NMS_INPUTS if nms_in_graph else NMS_INPUTS[:1]
    if dynamic_batch:
        axes = {n: {0: "batch"} for n in inputs}
        axes.update({n: {0: "batch" if not nms_in_graph else "detections"} for n in names})
    elif nms_in_graph:
        axes = {n: {0: "detections"} for n in names}
    batch = 2 if dynamic_batch else 1
    example = (torch.rand(batch, 3, image_size, image_size),)
    if nms_in_graph:  # two different non-square originals, so the letterbox arithmetic is traced
        example += (torch.tensor([[375, 500], [500, 333]][:batch], dtype=torch.int64),)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on shapes: S is fixed by design, B stays free
        torch.onnx.export(graph, example, str(path), input_names=list(inputs), output_names=list(names),
                          dynamic_axes=axes, opset_version=opset, dynamo=False)
    if metadata:
        import onnx

        proto = onnx.load(str(path))
        for key, value in metadata.items():
            proto.metadata_props.add(key=key, value=json.dumps(value))
        onnx.save(proto, str(path))
    return path


def onnx_session(path: str | Path, threads: int | None = None):
    """An ONNX Runtime CPU session (``pip install onnxruntime``)."""
    try:
        import onnxruntime as ort
    except ImportError as err:
        raise SystemExit("onnxruntime is not installed: pip install onnxruntime") from err
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_onnx(session, images: Tensor, sizes: Tensor | None = None) -> list[Tensor]:
    """Run a session on images (B, 3, S, S) float; its outputs as tensors, in graph order.

    ``sizes`` (B, 2) (height, width) of the original images, for an ``--nms`` graph (default: the
    inputs' own S x S, i.e. images that were not letterboxed)."""
    feed = {"images": images.numpy()}
    if "sizes" in [i.name for i in session.get_inputs()]:
        if sizes is None:
            sizes = torch.full((images.shape[0], 2), images.shape[-1], dtype=torch.int64)
        feed["sizes"] = torch.as_tensor(sizes, dtype=torch.int64).reshape(-1, 2).numpy()
    return [torch.from_numpy(o) for o in session.run(None, feed)]


def split_detections(image: Tensor, boxes: Tensor, scores: Tensor, labels: Tensor,
                     batch_size: int) -> list[dict[str, Tensor]]:
    """The ``--nms`` graph's flat outputs -> per image {"boxes", "scores", "labels"}, best first."""
    return [{"boxes": boxes[image == i], "scores": scores[image == i], "labels": labels[image == i]}
            for i in range(batch_size)]


def build_parser() -> argparse.ArgumentParser:
    d = PostprocessConfig()
    p = argparse.ArgumentParser(prog="python -m yolo.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a checkpoint, exported weights, a course checkpoint or a Darknet .weights file")
    p.add_argument("--onnx", required=True, help="where to write the .onnx file (an existing file only with --force)")
    p.add_argument("--force", action="store_true", help="replace an existing --onnx file")
    p.add_argument("--nms", action="store_true", help="decode, score and class-aware NMS inside the graph")
    p.add_argument("--dynamic-batch", action="store_true", help="any batch size (default: batch 1)")
    p.add_argument("--image-size", type=image_size, default=None, help=f"input side S, a multiple of 32 up to "
                   f"{MAX_IMAGE_SIZE} (default: the size the checkpoint was validated at, else 416)")
    p.add_argument("--conf", type=real(0, 1), default=d.conf_threshold,
                   help=f"with --nms: score threshold in [0, 1] (default {d.conf_threshold})")
    p.add_argument("--iou", type=real(0, 1), default=d.iou_threshold,
                   help=f"with --nms: NMS IoU in [0, 1] (default {d.iou_threshold})")
    p.add_argument("--max-det", type=integer(1, MAX_CANDIDATES), default=d.max_detections,
                   help=f"with --nms: per image, 1..{MAX_CANDIDATES} (default {d.max_detections})")
    p.add_argument("--top-k", type=integer(1, MAX_CANDIDATES), default=1000,
                   help=f"with --nms: candidates per image entering NMS, 1..{MAX_CANDIDATES} (default 1000)")
    p.add_argument("--opset", type=integer(11, MAX_OPSET), default=OPSET,
                   help=f"ONNX opset, 11..{MAX_OPSET} (default {OPSET})")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:  # before the model is read: an existing file without --force, a folder, an unwritable place
        target = output_file(args.onnx, args.force, "--onnx")
    except OutputError as err:
        parser.error(str(err))
    try:
        state = read_checkpoint(args.checkpoint)
        model = build_model(state)
    except CheckpointError as err:
        raise SystemExit(str(err)) from None
    args.image_size = args.image_size or state.image_size or DEFAULT_IMAGE_SIZE
    config = PostprocessConfig(conf_threshold=args.conf, iou_threshold=args.iou, max_detections=args.max_det)
    anchors = state.anchors_at(args.image_size)  # fractions of this input (Darknet's pixel anchors converted)
    metadata = {"class_names": state.class_names, "anchors": anchors, "image_size": args.image_size,
                "outputs": list(NMS_OUTPUTS if args.nms else RAW_OUTPUTS)}
    # written beside the target (or, for a device such as /dev/null, in the temp folder), checked,
    # then moved into place: a failed export or a full disk never leaves half a file at --onnx
    scratch = target.parent if not target.exists() or target.is_file() else None
    try:
        with tempfile.TemporaryDirectory(dir=scratch, prefix=".export-") as tmp:
            path = export_onnx(model, Path(tmp) / "model.onnx", args.image_size, anchors, args.nms,
                               args.dynamic_batch, config, args.top_k, args.opset, metadata)
            images = torch.rand(1, 3, args.image_size, args.image_size)
            with torch.no_grad():
                expected = model(images)
            if not args.nms:
                got = run_onnx(onnx_session(path), images)
                diff = max(float((a - b).abs().max()) for a, b in zip(expected, got))
                print(f"ONNX Runtime vs PyTorch on a random image: max |difference| {diff:.2e}", file=sys.stderr)
            size = path.stat().st_size
            publish(path, target)
    except OSError as err:
        raise SystemExit(write_message(err, target)) from None
    path = target
    print(f"wrote {path} ({size / 1e6:.1f} MB; {state.num_classes} classes: "
          f"{', '.join(state.class_names[:5])}{' ...' if state.num_classes > 5 else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
