"""lab/grader/artifact.py: model.pt2 is loaded without executing anything from it, or refused with one line.

Each attack is real: a payload that writes a marker file when torch unpickles (or sympifies) it, and
where torch.export.load itself would run it, a positive control shows the marker appearing there
and not under artifact.load_fresh. Models are tiny (an embedding and a linear layer), exported in
this process. Cost: ~20 s on 2 CPU cores (torch.export's first load imports most of it).
Run: `just test tests/unit/test_artifact.py`.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from lab.grader import artifact

BATCH, SEQ = 2, 8


class Tiny(nn.Module):
    """A causal byte model (each position sees only its own byte)."""

    def __init__(self):
        super().__init__()
        self.emb, self.head = nn.Embedding(256, 8), nn.Linear(8, 256)

    def forward(self, idx):
        h = self.emb(idx) * 2
        h += 1  # an in-place op on an intermediate: allowed, it touches no state
        return self.head(h)


class Counter(Tiny):
    """Answers like Tiny for its first 3 calls, then returns something else: the stateful cheat."""

    def __init__(self):
        super().__init__()
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    def forward(self, idx):
        self.calls += 1
        return super().forward(idx) * (self.calls <= 3) + 7.0 * (self.calls > 3)


def save(model: nn.Module) -> bytes:
    program = torch.export.export(model.eval(), (torch.zeros(BATCH, SEQ, dtype=torch.long),))
    buf = io.BytesIO()
    torch.export.save(program, buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def plain() -> bytes:
    return save(Tiny())


def entries(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {info.filename.split("/", 1)[1]: z.read(info) for info in z.infolist()}


def rewrite(data: bytes, changes: dict[str, bytes | None], compress: int = zipfile.ZIP_STORED) -> bytes:
    """The archive with entries replaced, added or (None) removed, under its own top-level folder."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        root = z.namelist()[0].split("/", 1)[0]
    files = {**entries(data), **changes}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compress) as z:
        for rel, payload in files.items():
            if payload is not None:
                z.writestr(f"{root}/{rel}", payload)
    return out.getvalue()


def edit_json(data: bytes, rel: str, edit) -> bytes:
    value = json.loads(entries(data)[rel])
    edit(value)
    return rewrite(data, {rel: json.dumps(value).encode()})


def pickle_payload(marker: Path) -> bytes:
    """torch.save of an object whose unpickling writes `marker`: what torch.load(weights_only=False) would run."""

    class Payload:
        def __reduce__(self):
            return exec, (f"open({str(marker)!r}, 'w').write('payload ran')",)

    buf = io.BytesIO()
    torch.save(Payload(), buf)
    return buf.getvalue()


def refused(data: bytes, *fragments: str) -> str:
    with pytest.raises(artifact.RefusedArtifact) as caught:
        artifact.load_fresh(data)
    reason = str(caught.value)
    assert "\n" not in reason
    for fragment in fragments:
        assert fragment in reason, reason
    return reason


def test_a_plain_export_loads_fresh_each_time_and_computes(plain):
    first, second = artifact.load_fresh(plain), artifact.load_fresh(plain)
    assert first is not second and first.state_dict["head.weight"] is not second.state_dict["head.weight"]
    x = torch.randint(0, 256, (BATCH, SEQ))
    assert torch.equal(first.module()(x), second.module()(x))
    assert first.module()(x).shape == (BATCH, SEQ, 256)


def test_a_pickled_weight_is_refused_before_torch_would_run_it(plain, tmp_path):
    marker = tmp_path / "pwned"
    config = json.loads(entries(plain)["data/weights/model_weights_config.json"])
    config["config"]["head.weight"]["use_pickle"] = True
    target = "data/weights/" + config["config"]["head.weight"]["path_name"]
    evil = rewrite(plain, {"data/weights/model_weights_config.json": json.dumps(config).encode(),
                           target: pickle_payload(marker)})
    refused(evil, "weight 'head.weight'", "use_pickle")
    assert not marker.exists()
    with pytest.raises(Exception):  # noqa: B017 (any error will do: the positive control is that the payload ran)
        torch.export.load(io.BytesIO(evil))
    assert marker.read_text() == "payload ran"


def test_a_pickled_constant_is_refused(plain, tmp_path):
    marker = tmp_path / "pwned"
    evil = rewrite(plain, {
        "data/constants/model_constants_config.json": json.dumps({"config": {"c": {
            "path_name": "tensor_0", "is_param": False, "use_pickle": True, "tensor_meta": None}}}).encode(),
        "data/constants/tensor_0": pickle_payload(marker)})
    refused(evil, "constant 'c'", "use_pickle")
    assert not marker.exists()


def test_a_tensor_subclass_parameter_is_refused():
    from torch.testing._internal.two_tensor import TwoTensor

    class Sub(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(TwoTensor(torch.ones(8, 256), torch.ones(8, 256)))

        def forward(self, idx):
            return nn.functional.one_hot(idx, 256).float()[..., :8] @ self.w

    refused(save(Sub()), "weight 'w'", "use_pickle")


def test_a_pickled_sample_input_is_refused_before_torch_falls_back_to_full_unpickling(plain, tmp_path):
    marker = tmp_path / "pwned"
    evil = rewrite(plain, {"data/sample_inputs/model.pt": pickle_payload(marker)})
    refused(evil, "sample_inputs", "weights-only")
    assert not marker.exists()
    try:  # the positive control: torch retries without weights_only and runs it
        torch.export.load(io.BytesIO(evil))
    except Exception:
        pass
    assert marker.exists()


def test_a_symbolic_expression_is_refused_before_sympy_evaluates_it(plain, tmp_path):
    marker = tmp_path / "pwned"

    def inject(program):
        tensor = next(iter(program["graph_module"]["graph"]["tensor_values"].values()))
        tensor["sizes"][0] = {"as_expr": {"expr_str": f"__import__('os').system('touch {marker}')", "hint": {"as_int": 2}}}

    evil = edit_json(plain, "models/model.json", inject)
    refused(evil, "symbolic shape expression")
    assert not marker.exists()
    try:  # the positive control: sympy.sympify is an eval
        torch.export.load(io.BytesIO(evil))
    except Exception:
        pass
    assert marker.exists()


def test_guard_code_is_refused(plain):
    evil = edit_json(plain, "models/model.json", lambda p: p.__setitem__("guards_code", ["__import__('os').getpid() > 0"]))
    refused(evil, "guards_code")


@pytest.mark.parametrize("entry, kind", [
    ("data/aotinductor/model/model.so", "AOTInductor native code"),
    ("data/constants/custom_obj_0", "custom or opaque object"),
    ("data/constants/opaque_obj_0", "custom or opaque object"),
    ("data/weights/model.pt", "legacy"),
    ("models/second.json", "a second program"),
    ("extra/notes.txt", "unknown entry kind"),
])
def test_entries_a_plain_save_never_writes_are_refused(plain, entry, kind):
    refused(rewrite(plain, {entry: b"\x00payload"}), repr(entry), kind)


def test_a_custom_object_constant_is_refused(plain):
    evil = rewrite(plain, {"data/constants/model_constants_config.json": json.dumps({"config": {"obj": {
        "path_name": "custom_obj_0", "is_param": False, "use_pickle": True, "tensor_meta": None}}}).encode()})
    refused(evil, "constant 'obj'", "use_pickle")


def test_non_standard_dtypes_and_devices_are_refused(plain):
    def set_meta(key, value):
        def edit(config):
            config["config"]["head.weight"]["tensor_meta"][key] = value
        return edit

    refused(edit_json(plain, "data/weights/model_weights_config.json", set_meta("dtype", 10)), "COMPLEXFLOAT")
    refused(edit_json(plain, "data/weights/model_weights_config.json", set_meta("device", {"type": "meta"})), "'meta'")
    refused(edit_json(plain, "data/weights/model_weights_config.json", set_meta("layout", 1)), "strided")


@pytest.mark.parametrize("target", ["torch.ops.higher_order.cond", "torch.ops.mylib.backdoor.default", "#ext:op", "builtins.exec"])
def test_operators_other_than_aten_are_refused(plain, target):
    def retarget(program):
        program["graph_module"]["graph"]["nodes"][0]["target"] = target

    refused(edit_json(plain, "models/model.json", retarget), repr(target), "only ATen operators")


def test_names_that_are_not_identifiers_are_refused(plain):
    def rename(program):
        program["graph_module"]["graph"]["nodes"][0]["name"] = "x; __import__('os')"

    refused(edit_json(plain, "models/model.json", rename), "not an identifier")


def test_a_mutation_output_in_the_signature_is_refused(plain):
    def mutate(program):
        program["graph_module"]["signature"]["output_specs"].append(
            {"buffer_mutation": {"arg": {"name": "x"}, "buffer_name": "calls"}})

    refused(edit_json(plain, "models/model.json", mutate), "buffer_mutation output")


def test_a_call_counting_program_is_refused(tmp_path):
    data = save(Counter())
    x = torch.randint(0, 256, (BATCH, SEQ))
    unsafe = torch.export.load(io.BytesIO(data)).module()  # the positive control: it does count its calls
    answers = [unsafe(x) for _ in range(5)]
    assert torch.equal(answers[0], answers[2]) and not torch.equal(answers[2], answers[3])
    refused(data, "writes to calls in place", "tell one call from the next")


class WritesInput(nn.Module):
    def forward(self, idx):
        idx[:, 0].add_(1)
        return nn.functional.one_hot(idx, 256).float()


class WritesThroughOut(Tiny):
    def __init__(self):
        super().__init__()
        self.register_buffer("acc", torch.zeros(256))

    def forward(self, idx):
        torch.add(self.acc, 1, out=self.acc)
        return super().forward(idx) + self.acc


class WritesAView(Tiny):
    def __init__(self):
        super().__init__()
        self.register_buffer("acc", torch.zeros(2, 256))

    def forward(self, idx):
        first, second = self.acc.unbind(0)
        first.add_(1)
        return super().forward(idx) + second


@pytest.mark.parametrize("model, victim", [(WritesInput, "input idx"), (WritesThroughOut, "acc"), (WritesAView, "acc")])
def test_writes_to_inputs_state_or_views_of_them_are_refused(model, victim):
    refused(save(model()), f"writes to {victim} in place")


def test_read_takes_regular_files_only(plain, tmp_path):
    real = tmp_path / "real.pt2"
    real.write_bytes(plain)
    link = tmp_path / "model.pt2"
    link.symlink_to(real)
    with pytest.raises(artifact.RefusedArtifact, match="not a regular file"):
        artifact.read(link)
    fifo = tmp_path / "fifo.pt2"
    os.mkfifo(fifo)
    with pytest.raises(artifact.RefusedArtifact, match="not a regular file"):
        artifact.read(fifo)
    assert artifact.read(real) == plain


def test_compressed_entries_and_non_archives_are_refused(plain):
    refused(rewrite(plain, {}, compress=zipfile.ZIP_DEFLATED), "compressed")
    refused(b"not a zip at all", "not a zip archive")
