"""Load model.pt2 without executing anything from it: the grader's only way into an artifact.

`torch.export.load` trusts its input: a weight or constant whose entry in the archive's payload
config says `use_pickle` is read with `torch.load(weights_only=False)`; custom and opaque objects are
unpickled; a `guards_code` string is compiled into the module; symbolic shapes go through
`sympy.sympify` (an `eval`); `data/aotinductor/` holds shared libraries; a sample input that the
weights-only unpickler rejects is unpickled again without it. So the archive is read once into
memory and inspected BEFORE torch sees it: only the entries a plain `torch.export.save` of a
static-shape program writes, plain tensors of standard dtypes stored as raw bytes, ATen operators,
no symbolic expression, no custom object, no guard code. After loading, the graph is checked for
state: no operator may write to a parameter, buffer, constant or input (or a view of one), so every
call is a pure function of its input and no call count or order can change an answer.

Any refusal is a RefusedArtifact whose message is one line naming what was refused and why.
"""

from __future__ import annotations

import io
import json
import operator
import os
import re
import stat
import zipfile
from pathlib import Path

MAX_BYTES = 4 << 30  # an artifact larger than this is refused before it is read whole
STANDARD_DTYPES = {"BYTE", "CHAR", "SHORT", "INT", "LONG", "HALF", "FLOAT", "DOUBLE", "BOOL", "BFLOAT16"}
DEVICES = {"cpu", "cuda"}
INPUT_KINDS = {"user_input", "parameter", "buffer", "tensor_constant"}
OUTPUT_KINDS = {"user_output"}
# What torch.export.save writes for one static-shape program named "model" (torch 2.x archive v6).
ENTRIES = re.compile(r"archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id"
                     r"|models/model\.json|data/sample_inputs/model\.pt"
                     r"|data/weights/model_weights_config\.json|data/weights/weight_\d+"
                     r"|data/constants/model_constants_config\.json|data/constants/tensor_\d+")
PAYLOADS = {"data/weights/model_weights_config.json": ("data/weights/", "weight_"),
            "data/constants/model_constants_config.json": ("data/constants/", "tensor_")}
TARGET = re.compile(r"torch\.ops\.aten\.[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*|_operator\.getitem")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
FQN = re.compile(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*")
# Argument kinds that only dynamic shapes, custom classes or higher-order operators produce.
REFUSED_ARGUMENTS = {"as_expr": "a symbolic shape expression (parsed with sympy's eval)",
                     "as_custom_obj": "a custom class object (a script object)",
                     "as_graph": "a subgraph of a higher-order operator",
                     "as_operator": "an operator passed as a value"}
REBINDING = {"aten::set_", "aten::resize_", "aten::resize_as_", "aten::as_strided_"}
TREESPEC_TYPES = {None, "builtins.tuple", "builtins.list", "builtins.dict"}


class RefusedArtifact(Exception):
    """The artifact was not loaded; the message is one line: what was refused and why."""

    def __init__(self, reason: str):
        super().__init__(" ".join(reason.split()))
        self.reason = str(self)


def read(path: Path) -> bytes:
    """The bytes of a regular file at `path` (not a symlink, FIFO or device), read once."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise RefusedArtifact(f"{path.name}: no such file") from None
    except OSError as e:  # ELOOP: a symlink
        raise RefusedArtifact(f"{path.name} is not a regular file ({e.strerror}): the artifact must be a file the run wrote, "
                              "not a link") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise RefusedArtifact(f"{path.name} is not a regular file")
        if info.st_size > MAX_BYTES:
            raise RefusedArtifact(f"{path.name} is {info.st_size:,} bytes, more than the {MAX_BYTES:,} the grader reads")
        return f.read(MAX_BYTES + 1)


def inspect(data: bytes) -> dict:
    """Check an archive's bytes before torch reads them; returns the parsed models/model.json."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError) as e:
        raise RefusedArtifact(f"model.pt2 is not a zip archive ({e})") from None
    names = [i.filename for i in infos]
    roots = {n.split("/", 1)[0] for n in names}
    if len(roots) != 1 or any("/" not in n for n in names):
        raise RefusedArtifact(f"model.pt2 must hold one top-level folder, found {sorted(roots)[:5]}")
    if len(set(names)) != len(names):
        raise RefusedArtifact("model.pt2 holds duplicate entry names")
    if sum(i.file_size for i in infos) > MAX_BYTES:
        raise RefusedArtifact(f"model.pt2 unpacks to more than {MAX_BYTES:,} bytes")
    files = {}
    for info in infos:
        rel = info.filename.split("/", 1)[1]
        if not ENTRIES.fullmatch(rel):
            raise RefusedArtifact(f"model.pt2 entry {rel!r} is not part of a plain torch.export.save archive "
                                  f"({_entry_kind(rel)}): only raw tensors, the program JSON and its configs are loaded")
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
            raise RefusedArtifact(f"model.pt2 entry {rel!r} is compressed or encrypted; torch.export.save stores entries raw")
        files[rel] = info
    for required in ("archive_format", "archive_version", "models/model.json", "data/sample_inputs/model.pt", *PAYLOADS):
        if required not in files:
            raise RefusedArtifact(f"model.pt2 has no {required!r}: not a torch.export.save archive of one program")
    if archive.read(files["archive_format"]).strip() != b"pt2":
        raise RefusedArtifact("model.pt2's archive_format is not 'pt2'")

    def read_json(rel: str) -> dict:
        try:
            value = json.loads(archive.read(files[rel]))
        except ValueError as e:
            raise RefusedArtifact(f"model.pt2 entry {rel!r} is not JSON ({e})") from None
        if not isinstance(value, dict):
            raise RefusedArtifact(f"model.pt2 entry {rel!r} is not a JSON object")
        return value

    for config_name, (folder, prefix) in PAYLOADS.items():
        _check_payloads(read_json(config_name), config_name, folder, prefix, files)
    _check_sample_inputs(archive.read(files["data/sample_inputs/model.pt"]))
    program = read_json("models/model.json")
    _check_program(program)
    return program


def _entry_kind(rel: str) -> str:
    if rel.startswith("data/aotinductor/"):
        return "AOTInductor native code"
    if rel.startswith("data/constants/custom_obj_") or rel.startswith("data/constants/opaque_obj_"):
        return "a pickled custom or opaque object"
    if rel.endswith(".pt") or rel in ("version", "serialized_exported_program.json"):
        return "a pickled legacy payload"
    if rel.startswith("models/"):
        return "a second program"
    return "an unknown entry kind"


def _check_payloads(config: dict, config_name: str, folder: str, prefix: str, files: dict) -> None:
    """Every weight / constant is a plain tensor stored as raw bytes, never a pickle."""
    entries = config.get("config")
    if not isinstance(entries, dict):
        raise RefusedArtifact(f"{config_name} has no 'config' mapping")
    for fqn, meta in entries.items():
        what = f"{'weight' if 'weights' in folder else 'constant'} {fqn!r}"
        if not isinstance(meta, dict) or not FQN.fullmatch(str(fqn)):
            raise RefusedArtifact(f"{what} in {config_name} has a malformed entry")
        if meta.get("use_pickle") is not False:
            raise RefusedArtifact(f"{what} is stored as a pickle (use_pickle), which torch.load would run as code: "
                                  "a tensor subclass, a custom object or a crafted payload; only plain tensors are loaded")
        path_name = str(meta.get("path_name", ""))
        if not re.fullmatch(re.escape(prefix) + r"\d+", path_name) or folder + path_name not in files:
            raise RefusedArtifact(f"{what} points at {path_name!r}, which is not a raw {prefix}N entry of the archive")
        tensor = meta.get("tensor_meta")
        if not isinstance(tensor, dict):
            raise RefusedArtifact(f"{what} has no tensor metadata")
        dtype = _enum_name("ScalarType", tensor.get("dtype"))
        if dtype not in STANDARD_DTYPES:
            raise RefusedArtifact(f"{what} has dtype {dtype or tensor.get('dtype')!r}; "
                                  f"standard dtypes only ({', '.join(sorted(STANDARD_DTYPES))})")
        if _enum_name("Layout", tensor.get("layout")) != "Strided":
            raise RefusedArtifact(f"{what} is not a strided (dense) tensor")
        device = (tensor.get("device") or {}).get("type")
        if device not in DEVICES:
            raise RefusedArtifact(f"{what} lives on device {device!r}; only cpu and cuda tensors are loaded")
        _reject_symbolic(tensor, what)


def _enum_name(enum: str, value: object) -> str | None:
    from torch._export.serde import schema

    try:
        return getattr(schema, enum)(value).name
    except (ValueError, TypeError):
        return None


def _check_sample_inputs(payload: bytes) -> None:
    """torch retries a sample input that the weights-only unpickler rejects with the full unpickler: refuse it here."""
    import torch

    try:
        value = torch.load(io.BytesIO(payload), weights_only=True)
    except Exception as e:
        raise RefusedArtifact(f"data/sample_inputs/model.pt is not a weights-only payload "
                              f"({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}); "
                              "torch would unpickle it as code") from None
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, (tuple, list)):
            todo.extend(item)
        elif isinstance(item, dict):
            todo.extend(item.values())
        elif not (item is None or type(item) is torch.Tensor):
            raise RefusedArtifact(f"data/sample_inputs/model.pt holds a {type(item).__name__}, not plain tensors")


def _reject_symbolic(value: object, where: str) -> None:
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            for key, inner in item.items():
                if key in REFUSED_ARGUMENTS and inner is not None:
                    raise RefusedArtifact(f"{where} holds {REFUSED_ARGUMENTS[key]} ({key}); "
                                          "export with static shapes and ATen operators only")
                todo.append(inner)
        elif isinstance(item, list):
            todo.extend(item)


def _check_program(program: dict) -> None:
    """models/model.json: one static-shape ATen graph with a plain signature and no code to run."""
    if program.get("guards_code"):
        raise RefusedArtifact("the program carries guards_code, Python source that module() would compile and run")
    if program.get("range_constraints"):
        raise RefusedArtifact("the program has dynamic shapes (range_constraints); export with static shapes")
    module = program.get("graph_module")
    if not isinstance(module, dict) or not isinstance(module.get("graph"), dict):
        raise RefusedArtifact("models/model.json has no graph_module.graph")
    graph = module["graph"]
    _reject_symbolic(program, "the program")
    for kind in ("custom_obj_values", "sym_int_values", "sym_bool_values", "sym_float_values"):
        if graph.get(kind):
            raise RefusedArtifact(f"the graph has {kind} ({', '.join(list(graph[kind])[:3])}): "
                                  "custom objects and symbolic values are not loaded")
    if module.get("treespec_namedtuple_fields"):
        raise RefusedArtifact("the program's inputs or outputs are named tuples; plain tensors in, plain tensor out")
    for node in graph.get("nodes", []):
        target = node.get("target")
        if not isinstance(target, str) or not TARGET.fullmatch(target):
            raise RefusedArtifact(f"node {node.get('name')!r} calls {target!r}: only ATen operators are loaded "
                                  "(no higher-order, custom or extension operators)")
    _check_names(program)
    _check_signature(module.get("signature") or {})
    for entry in module.get("module_call_graph") or []:
        for key in ("in_spec", "out_spec"):
            if spec := (entry.get("signature") or {}).get(key):
                _check_treespec(spec)


def _check_names(program: dict) -> None:
    """Names end up in generated Python source (module()): identifiers and dotted paths only."""
    todo = [program]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            for key, inner in item.items():
                if key == "name" and isinstance(inner, str) and not NAME.fullmatch(inner):
                    raise RefusedArtifact(f"the program names a value {inner[:60]!r}, which is not an identifier")
                if key in ("parameter_name", "buffer_name", "tensor_constant_name", "fqn") and isinstance(inner, str) \
                        and inner and not FQN.fullmatch(inner):
                    raise RefusedArtifact(f"the program has a {key} {inner[:60]!r}, which is not a dotted name")
                if key != "metadata":  # stack traces and module paths are free text, stored as strings only
                    todo.append(inner)
        elif isinstance(item, list):
            todo.extend(item)


def _check_signature(signature: dict) -> None:
    inputs, outputs = signature.get("input_specs", []), signature.get("output_specs", [])
    for spec in inputs:
        kind = next(iter(spec), None)
        if kind not in INPUT_KINDS:
            raise RefusedArtifact(f"the program takes a {kind} input; only the byte tensor, parameters, buffers "
                                  "and tensor constants are loaded")
    for spec in outputs:
        kind = next(iter(spec), None)
        if kind not in OUTPUT_KINDS:
            raise RefusedArtifact(f"the program has a {kind} output: it mutates its state or inputs "
                                  "(a stateful program could tell one call from the next)")
    users = [s for s in inputs if "user_input" in s]
    if len(users) != 1 or len(outputs) != 1:
        raise RefusedArtifact(f"the program takes {len(users)} input(s) and returns {len(outputs)} output(s); "
                              "the contract is one int64 tensor in, one logits tensor out")


def _check_treespec(text: str) -> None:
    try:
        spec = json.loads(text)
    except ValueError:
        raise RefusedArtifact("the program's input/output spec is not JSON") from None
    todo = [spec]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            if item.get("type") not in TREESPEC_TYPES:
                raise RefusedArtifact(f"the program's inputs or outputs use the container type {item.get('type')!r}; "
                                      "tuples, lists and dicts only")
            todo.extend(item.get("children_spec") or [])
        elif isinstance(item, list):
            todo.extend(item)


def check_loaded(program) -> None:
    """After loading: plain tensors only, and no operator writes to state or input (so no call can count calls)."""
    import torch

    for kind, values in (("parameter/buffer", program.state_dict), ("constant", program.constants)):
        for name, value in values.items():
            if type(value) not in (torch.Tensor, torch.nn.Parameter) or type(value.data) is not torch.Tensor:
                raise RefusedArtifact(f"{kind} {name!r} is a {type(value).__name__}, not a plain tensor")
    sig = program.graph_signature
    for attr in ("buffers_to_mutate", "user_inputs_to_mutate", "parameters_to_mutate"):
        if getattr(sig, attr, None):
            raise RefusedArtifact(f"the program mutates {', '.join(getattr(sig, attr).values())} ({attr}): "
                                  "a stateful program could tell one call from the next")
    owners = {**sig.inputs_to_parameters, **sig.inputs_to_buffers, **sig.inputs_to_lifted_tensor_constants}
    aliases: dict[torch.fx.Node, str] = {}  # node -> the input or state it is (a view of)
    for node in program.graph.nodes:
        if node.op == "placeholder":
            aliases[node] = owners.get(node.name, f"input {node.name}")
        elif node.op == "call_function":
            _check_node(node, aliases)
        elif node.op != "output":
            raise RefusedArtifact(f"node {node.name} is a {node.op} node; the graph may only call ATen operators")


def _check_node(node, aliases: dict) -> None:
    import torch

    target = node.target
    if target is operator.getitem:
        if node.args[0] in aliases:
            aliases[node] = aliases[node.args[0]]
        return
    if not isinstance(target, torch._ops.OpOverload) or target.namespace != "aten":
        raise RefusedArtifact(f"node {node.name} calls {target}: only ATen operators are loaded")
    if target._schema.name in REBINDING:
        raise RefusedArtifact(f"node {node.name} calls {target}, which rebinds a tensor's storage (it could make state writable)")
    for i, arg in enumerate(target._schema.arguments):
        value = node.args[i] if i < len(node.args) else node.kwargs.get(arg.name)
        touched = [v for v in (value if isinstance(value, (list, tuple)) else [value]) if isinstance(v, torch.fx.Node) and v in aliases]
        if not touched or arg.alias_info is None:
            continue
        if arg.alias_info.is_write:
            raise RefusedArtifact(f"node {node.name} ({target}) writes to {aliases[touched[0]]} in place: "
                                  "a program that changes its own state or input could tell one call from the next")
        aliases[node] = aliases[touched[0]]  # a view of state or input: writes to it count as writes to them


def load_fresh(artifact: Path | bytes):
    """A freshly loaded ExportedProgram of `artifact` (a path or its bytes), after every check; RefusedArtifact if not."""
    import torch

    data = read(artifact) if isinstance(artifact, Path) else artifact
    inspect(data)
    try:
        program = torch.export.load(io.BytesIO(data))
    except Exception as e:
        raise RefusedArtifact(f"model.pt2 could not be loaded as a torch.export program: {type(e).__name__}: "
                              f"{str(e).splitlines()[0][:200] if str(e) else ''}") from None
    check_loaded(program)
    return program
