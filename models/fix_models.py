#!/usr/bin/env python3
"""Rewrite the packaged YuNet, SFace and MTCNN O-Net ONNX files into the form wajah loads.

Every change is output-preserving; `--check` proves it with ONNX Runtime on random inputs. Which files
are rewritten, and how, comes from models/manifest.toml: every model entry with `fix = "NAME"` is read
from SRC_DIR under its packaged name (the last part of `member`), rewritten by FIXES[NAME] and written
to DST_DIR under its `file` name; `--check` runs CHECKS[NAME] on the pair.

YuNet (fix = "yunet"):
  * per-tensor DequantizeLinear nodes (one-element scale) carry `block_size`/`axis`, which ONNX Runtime
    rejects; those two attributes are dropped on exactly those nodes.
  * the fixed 1x3x640x640 input becomes 1x3xHxW (any multiple of 32); output anchor counts become
    symbolic; stale intermediate shape annotations are removed.
SFace (fix = "sface"):
  * graph inputs that are initializers or are consumed by no node are removed (ONNX Runtime's Python
    API and OpenCV 5 refuse them).
  * the batch dimension becomes symbolic so several aligned faces run in one call.
  * PRelu(x, a) becomes x + (1 - a) * Relu(-x), the per-channel scales as BatchNormalization: same
    values, and ONNX Runtime keeps every layer in its blocked layout (about 2.5x faster than PRelu).
  * the final fully connected layer (50176 x 128, int8 weights in blocks of 64 along K) becomes
    MatMulNBits with the same 8-bit blocks, run with int8 activations (accuracy level 4): it reads
    6.4 MB of weights per call instead of 25.7 MB of folded floats (about 1.4 -> 0.5 ms). This one
    layer is not bit-exact: `--check` requires cosine >= 0.99999 to the original's embedding.
O-Net (fix = "onet"):
  * the same PRelu rewrite (PRelu is a third of its time in ONNX Runtime).

Usage: fix_models.py SRC_DIR DST_DIR [--check]
       fix_models.py --stale-inputs-only SFACE_IN SFACE_OUT   (the first SFace fix alone, for peers)
"""

import sys
import tomllib
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

MANIFEST = tomllib.loads((Path(__file__).resolve().parent / "manifest.toml").read_text())


def model_entries() -> list:
    """Every model in the manifest: the detector, the recognisers, the confirmer."""
    return [MANIFEST["detector"], *MANIFEST["recognizer"], MANIFEST["confirmer"]]


def packaged_name(entry: dict) -> str:
    """The file name the model has in its package (and in setup.py's `original` folder)."""
    return Path(entry["member"]).name


def per_tensor_scales(g: onnx.GraphProto) -> set:
    """Names of scale initializers that are a scalar or a one-element vector (per-tensor quantization)."""
    return {t.name for t in g.initializer if len(t.dims) <= 1 and int(np.prod(t.dims)) == 1}


def fix_yunet(model: onnx.ModelProto) -> onnx.ModelProto:
    g = model.graph
    scales = per_tensor_scales(g)
    dropped = 0
    for node in g.node:
        if node.op_type != "DequantizeLinear" or node.input[1] not in scales:
            continue
        keep = [a for a in node.attribute if a.name not in ("block_size", "axis")]
        if len(keep) != len(node.attribute):
            dropped += 1
            del node.attribute[:]
            node.attribute.extend(keep)
    dims = g.input[0].type.tensor_type.shape.dim
    dims[2].dim_param = "height"
    dims[3].dim_param = "width"
    for out in g.output:
        out.type.tensor_type.shape.dim[1].dim_param = "anchors_" + out.name.split("_")[-1]
    del g.value_info[:]
    print(f"yunet: dropped block_size/axis on {dropped} per-tensor DequantizeLinear nodes")
    return model


def drop_stale_inputs(model: onnx.ModelProto) -> int:
    """Keeps only graph inputs that a node consumes and no initializer provides; returns how many went."""
    g = model.graph
    initializers = {t.name for t in g.initializer}
    consumed = {name for node in g.node for name in node.input}
    keep = [i for i in g.input if i.name in consumed and i.name not in initializers]
    removed = len(g.input) - len(keep)
    del g.input[:]
    g.input.extend(keep)
    return removed


def rewrite_prelu(g: onnx.GraphProto) -> int:
    """Rewrites every PRelu with per-channel slopes; returns how many."""
    # PRelu(x, a) = x + (1 - a) * Relu(-x). The two per-channel scales (-1, then 1 - a) are written as
    # BatchNormalization with mean 0 and variance 1 - eps, which ONNX Runtime runs inside its blocked
    # (NCHWc) layout with the Relu and the Add fused, so no layer leaves that layout.
    slopes = {t.name: t for t in g.initializer}
    eps = 1e-5
    nodes = []
    rewritten = 0
    for node in g.node:
        if node.op_type != "PRelu":
            nodes.append(node)
            continue
        x, slope = node.input
        (y,) = node.output
        p = node.name or y
        a = numpy_helper.to_array(slopes[slope]).astype(np.float32).reshape(-1)
        channels = a.shape[0]
        for name, value in [
            ("_minus_one", -np.ones(channels)),
            ("_one_minus_a", 1.0 - a),
            ("_zero", np.zeros(channels)),
            ("_var", np.full(channels, 1.0 - eps)),
        ]:
            g.initializer.append(numpy_helper.from_array(value.astype(np.float32), p + name))
        nodes += [
            helper.make_node("BatchNormalization", [x, p + "_minus_one", p + "_zero", p + "_zero", p + "_var"],
                             [p + "_negx"], name=p + "_neg", epsilon=eps),
            helper.make_node("Relu", [p + "_negx"], [p + "_negpart"], name=p + "_relu_neg"),
            helper.make_node("BatchNormalization", [p + "_negpart", p + "_one_minus_a", p + "_zero", p + "_zero",
                                                    p + "_var"], [p + "_scaled"], name=p + "_scale", epsilon=eps),
            helper.make_node("Add", [x, p + "_scaled"], [y], name=p + "_add"),
        ]
        rewritten += 1
    del g.node[:]
    g.node.extend(nodes)
    return rewritten


def fc_as_matmul_nbits(model: onnx.ModelProto, gemm_name: str) -> None:
    """Replaces Gemm(x, DequantizeLinear(W int8 [N, K], blocks along K), b) with MatMulNBits + Add."""
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    gemm = next(n for n in g.node if n.op_type == "Gemm" and n.name == gemm_name)
    attrs = {a.name: helper.get_attribute_value(a) for a in gemm.attribute}
    assert attrs.get("transB") == 1 and attrs.get("transA", 0) == 0, attrs
    assert attrs.get("alpha", 1.0) == 1.0 and attrs.get("beta", 1.0) == 1.0, attrs
    dq = next(n for n in g.node if n.output[0] == gemm.input[1])
    dq_attrs = {a.name: helper.get_attribute_value(a) for a in dq.attribute}
    block = dq_attrs["block_size"]
    assert dq.op_type == "DequantizeLinear" and dq_attrs.get("axis") == 1, dq_attrs
    q = numpy_helper.to_array(inits[dq.input[0]])
    scales = numpy_helper.to_array(inits[dq.input[1]]).astype(np.float32)
    zero = numpy_helper.to_array(inits[dq.input[2]])
    n, k = q.shape
    assert q.dtype == np.int8 and zero.dtype == np.int8, (q.dtype, zero.dtype)
    assert block >= 16 and block & (block - 1) == 0 and k % block == 0, (block, k)
    blocks = k // block
    assert scales.shape == (n, blocks) and zero.shape == (n, blocks), (scales.shape, zero.shape)
    # MatMulNBits stores unsigned codes: q + 128 against zero point z + 128 dequantizes identically.
    as_u8 = lambda v: (v.astype(np.int16) + 128).astype(np.uint8)  # noqa: E731
    p = gemm_name
    g.initializer.extend([
        numpy_helper.from_array(as_u8(q).reshape(n, blocks, block), p + "_nbits_b"),
        numpy_helper.from_array(scales.reshape(-1), p + "_nbits_scales"),
        numpy_helper.from_array(as_u8(zero).reshape(-1), p + "_nbits_zero_points"),
    ])
    for name in dq.input:
        g.initializer.remove(inits[name])
    nodes = []
    for node in g.node:
        if node is dq:
            continue
        if node is gemm:
            nodes += [
                helper.make_node("MatMulNBits", [gemm.input[0], p + "_nbits_b", p + "_nbits_scales",
                                                 p + "_nbits_zero_points"], [p + "_nbits"], name=p + "_nbits",
                                 domain="com.microsoft", K=k, N=n, bits=8, block_size=block, accuracy_level=4),
                helper.make_node("Add", [p + "_nbits", gemm.input[2]], list(gemm.output), name=p + "_bias"),
            ]
            continue
        nodes.append(node)
    del g.node[:]
    g.node.extend(nodes)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))


def fix_sface(model: onnx.ModelProto) -> onnx.ModelProto:
    g = model.graph
    removed = drop_stale_inputs(model)
    g.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    g.output[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    del g.value_info[:]

    rewritten = rewrite_prelu(g)
    fc_as_matmul_nbits(model, "pre_fc1")
    print(f"sface: removed {removed} stale graph inputs, rewrote {rewritten} PRelu nodes, pre_fc1 as MatMulNBits")
    return model


def fix_onet(model: onnx.ModelProto) -> onnx.ModelProto:
    print(f"onet: rewrote {rewrite_prelu(model.graph)} PRelu nodes")
    return model


def session(model):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def check_sface(entry: dict, original: Path, fixed: Path, rng) -> None:
    # The original runs in ONNX Runtime once its stale inputs are gone; compare the PRelu rewrite
    # (and batching) against that minimal fix.
    minimal = onnx.load(original)
    drop_stale_inputs(minimal)
    ref = session(minimal.SerializeToString())
    new = session(str(fixed))
    w, h = entry["input_size"]
    faces = rng.uniform(0, 255, size=(3, 3, h, w)).astype(np.float32)
    want = np.concatenate([ref.run(None, {"data": faces[i : i + 1]})[0] for i in range(3)])
    got = new.run(None, {"data": faces})[0]
    err = float(np.max(np.abs(want - got)) / np.max(np.abs(want)))
    cos = float(np.min(np.sum(want * got, 1) / np.linalg.norm(want, axis=1) / np.linalg.norm(got, axis=1)))
    print(f"sface check: max relative difference {err:.2e}, min cosine {cos:.7f} over a batch of 3")
    assert cos >= 0.99999 and err < 1e-2, (cos, err)


def check_yunet(entry: dict, original: Path, fixed: Path, rng) -> None:
    # Compare with the minimal fix (block_size dropped, fixed 640x640 input) at 640x640, then check
    # that 320x320 and 480x640 run.
    minimal = onnx.load(original)
    scales = per_tensor_scales(minimal.graph)
    for node in minimal.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[1] in scales:
            keep = [a for a in node.attribute if a.name not in ("block_size", "axis")]
            del node.attribute[:]
            node.attribute.extend(keep)
    ref = session(minimal.SerializeToString())
    new = session(str(fixed))
    img = rng.uniform(0, 255, size=(1, 3, 640, 640)).astype(np.float32)
    for a, b in zip(ref.run(None, {"input": img}), new.run(None, {"input": img})):
        assert np.array_equal(a, b), "yunet outputs differ"
    finest = min(entry["strides"])
    for h, w in [(320, 320), (480, 640)]:
        outs = new.run(None, {"input": img[:, :, :h, :w]})
        assert outs[0].shape == (1, (h // finest) * (w // finest), 1), outs[0].shape
    print("yunet check: identical outputs at 640x640; 320x320 and 480x640 run")


def check_onet(entry: dict, original: Path, fixed: Path, rng) -> None:
    # The PRelu rewrite against the original, on a batch of crops.
    ref = session(str(original))
    new = session(str(fixed))
    side = entry["input_size"]
    crops = rng.uniform(-1, 1, size=(4, side, side, 3)).astype(np.float32)
    for a, b in zip(ref.run(None, {"input_3": crops}), new.run(None, {"input_3": crops})):
        err = float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(a))), 1e-6))
        assert err < 1e-4, err
    print("onet check: outputs within 1e-4 (relative) over a batch of 4")


FIXES = {"yunet": fix_yunet, "sface": fix_sface, "onet": fix_onet}
# In this order, on one random generator, so that every run draws the same inputs.
CHECKS = {"sface": check_sface, "yunet": check_yunet, "onet": check_onet}


def fixed_entries() -> list:
    """The manifest's model entries that name a fix, checked to name a known one."""
    entries = [m for m in model_entries() if "fix" in m]
    for m in entries:
        if m["fix"] not in FIXES:
            sys.exit(f"fix_models: {m['id']} names fix {m['fix']!r}; known fixes: {', '.join(FIXES)}")
    return entries


def check(src: Path, dst: Path) -> None:
    """Compare outputs of original and rewritten models with ONNX Runtime on random inputs."""
    rng = np.random.default_rng(7)
    for name, run in CHECKS.items():
        for m in (m for m in fixed_entries() if m["fix"] == name):
            run(m, src / packaged_name(m), dst / m["file"], rng)


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    if sys.argv[1] == "--stale-inputs-only":
        # For peers (OpenCV 5 refuses SFace's stale inputs): that fix alone, nothing else changed.
        model = onnx.load(sys.argv[2])
        print(f"removed {drop_stale_inputs(model)} stale graph inputs")
        onnx.save(model, sys.argv[3])
        return 0
    src, dst = Path(sys.argv[1]), Path(sys.argv[2])
    dst.mkdir(parents=True, exist_ok=True)
    for m in fixed_entries():
        onnx.save(FIXES[m["fix"]](onnx.load(src / packaged_name(m))), dst / m["file"])
    if "--check" in sys.argv[3:]:
        check(src, dst)
    return 0


if __name__ == "__main__":
    sys.exit(main())
