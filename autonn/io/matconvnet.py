"""Reading MatConvNet model files (:func:`load_matconvnet`).

Version 5 ``.mat`` files are read with ``scipy.io``; version 7.3 files (HDF5) need ``h5py``.
Two layouts exist, both written by MatConvNet with ``save(file, '-struct', 'net')``:

**SimpleNN** (``vl_simplenn``), top-level variables:

- ``layers``: a 1×L *cell* array; cell ``l`` is a 1×1 struct with fields ``type`` (char:
  'conv', 'pool', 'relu', ...), ``name`` (char), ``weights`` (1×2 cell ``{filters, biases}``
  for conv/convt, 1×3 ``{gains, biases, moments}`` for bnorm), and the options of the type:
  ``stride`` ([sh sw]), ``pad`` ([top bottom left right]), ``dilate``, ``pool`` ([ph pw]),
  ``method``, ``upsample``, ``crop``, ``numGroups``, ``param``, ``leak``, ``rate``,
  ``epsilon``, ``learningRate``, ``weightDecay``, ``precious``, ``opts`` (ignored). Beta-era files
  with ``filters``/``biases`` fields instead of ``weights`` are accepted.
- ``meta``: struct with ``normalization`` (struct: ``imageSize`` [H W C], ``averageImage``
  (H×W×C or C×1), ``keepAspect``, ``border``, ``cropSize``, ``interpolation``) and ``classes``
  (struct: ``name`` and ``description``, 1×K cells of char). Older files keep ``normalization``
  and ``classes`` at the top level.

**DagNN** (``dagnn.DagNN.saveobj``), top-level variables:

- ``vars``: 1×V struct array with fields ``name``, ``precious``;
- ``params``: 1×P struct array with ``name``, ``value``, ``learningRate``, ``weightDecay`` and
  (newer files) ``trainMethod``;
- ``layers``: 1×L struct array with ``name``, ``type`` (the block class, 'dagnn.Conv'),
  ``inputs``, ``outputs``, ``params`` (1×n cells of char) and ``block`` (struct of the block's
  options in MatConvNet's names: ``size``, ``hasBias``, ``stride``, ``pad``, ``poolSize``,
  ``method``, ``numChannels``, ``epsilon``, ``dim``, ``Ho``, ``Wo`` ...);
- ``meta``: as above.

Conversion to autonn's layout. MATLAB arrays are column-major and MatConvNet orders data
H×W×C×N and filters H×W×C×K (convt: H×W×K×C). ``scipy.io`` already returns arrays indexed like
MATLAB (``a[i, j, c, k]`` is ``a(i+1, j+1, c+1, k+1)``), so a conv filter bank becomes
``(K, C, H, W)`` by the axis permutation (3, 2, 0, 1) (convt: ``(C, K, H, W)``, the same
permutation); MATLAB's dropped trailing singleton dimensions are restored first. Biases, gains
become vectors, bnorm moments stay (C, 2). ``averageImage`` becomes (C, H, W) (or (C,) for a
vector) under both its own name and ``average_image``; ``imageSize`` stays [H W C] and
``image_size`` is (C, H, W). ``Concat``'s ``dim`` (MATLAB 3 = channels) becomes
``axis`` (1); ``Scale``'s ``size`` [H W C] becomes NCHW.
"""

import os

import numpy as np

from .. import dagnn, simplenn
from . import mat5
from ..errors import FormatError, reading

SIMPLENN_NUMERIC = {"stride", "pad", "dilate", "pool", "upsample", "crop", "num_groups"}
SIMPLENN_REAL = {"leak", "rate", "epsilon", "p"}
SIMPLENN_BOOL = {"precious", "no_root", "aggregate"}
SIMPLENN_TEXT = {"type", "name", "method", "loss"}
SIMPLENN_IGNORED = {"opts", "class", "instance_weights", "momentum", "filtersMomentum",
                    "biasesMomentum", "forward", "backward"}

# DagNN block options: MatConvNet's name -> (autonn's name, kind).
DAGNN_OPTIONS = {
    "size": ("size", "ints"), "hasBias": ("has_bias", "bool"), "stride": ("stride", "ints"),
    "pad": ("pad", "ints"), "dilate": ("dilate", "ints"), "upsample": ("upsample", "ints"),
    "crop": ("crop", "ints"), "numGroups": ("num_groups", "int"),
    "poolSize": ("pool_size", "ints"), "method": ("method", "text"), "leak": ("leak", "real"),
    "param": ("param", "reals"), "numChannels": ("num_channels", "int"),
    "epsilon": ("epsilon", "real"), "rate": ("rate", "real"), "loss": ("loss", "text"),
    "dim": ("axis", "dim"), "p": ("p", "real"), "noRoot": ("no_root", "bool"),
    "aggregate": ("aggregate", "bool"), "subdivisions": ("subdivisions", "ints"),
    "transform": ("transform", "transform"), "Ho": ("ho", "int"), "Wo": ("wo", "int"),
}
# Options MatConvNet saves that have no effect on the function computed.
DAGNN_IGNORED = {"opts", "useShortCircuit", "ignoreAverage", "frozen", "numInputs", "flatten",
                 "instanceWeights"}


def load_matconvnet(path):
    """Load a MatConvNet model file.

    Returns a SimpleNN network (a dict ``{'layers': [...], 'meta': {...}}`` for
    :mod:`autonn.simplenn` and ``an.Net``) or an :class:`autonn.dagnn.DagNN`, with arrays in
    autonn's layout (see the module docstring) and ``meta['normalization']`` and
    ``meta['classes']`` converted. A file that is not such a model raises
    :class:`autonn.errors.FormatError` naming it.
    """
    where = f"load_matconvnet({os.path.basename(str(path))!r})"
    with reading(where):
        return _model_from_mat(_read_mat(path), where)


def _model_from_mat(contents, where):
    if "layers" not in contents:
        raise ValueError(f"{where}: no 'layers' variable: not a MatConvNet model (variables: "
                         f"{sorted(k for k in contents if not k.startswith('__'))})")
    layers = contents["layers"]
    meta = _meta(contents, where)
    if isinstance(layers, np.ndarray) and layers.dtype == object and layers.size and \
            all(_is_struct(_unwrap(v)) for v in layers.ravel(order="F")) and \
            all(_has_field(_unwrap(v), "block") for v in layers.ravel(order="F")) \
            and "params" in contents:
        return _dagnn_from_mat(contents, meta, where)
    if _is_struct(_unwrap(layers)) and _has_field(_unwrap(layers), "block"):
        return _dagnn_from_mat(contents, meta, where)
    return _simplenn_from_mat(layers, meta, where)


def _simplenn_from_mat(layers, meta, where):
    entries = _cells(layers)
    result = []
    for index, entry in enumerate(entries):
        entry = _unwrap(entry)
        if not _is_struct(entry):
            raise ValueError(f"{where}: layers{{{index + 1}}} must be a struct, got "
                             f"{type(entry).__name__}")
        fields = _struct_fields(entry)
        if "type" not in fields:
            raise ValueError(f"{where}: layers{{{index + 1}}} has no 'type' field (fields: "
                             f"{sorted(fields)})")
        kind = _text(fields["type"])
        layer = {}
        for key, value in fields.items():
            name = simplenn.ALIASES.get(key, key)
            if key in SIMPLENN_IGNORED or name in SIMPLENN_IGNORED:
                continue
            if name in ("weights",):
                layer["weights"] = _simplenn_weights(kind, _cells(value), where, index)
            elif name in ("filters", "biases"):
                continue
            elif name in SIMPLENN_TEXT:
                layer[name] = _text(value)
            elif name in SIMPLENN_NUMERIC:
                layer[name] = _ints(value)
            elif name in SIMPLENN_REAL:
                layer[name] = float(_numbers(value)[0])
            elif name in SIMPLENN_BOOL:
                numbers = _numbers(value)
                layer[name] = bool(numbers[0]) if numbers.size else False
            elif name == "param":
                layer[name] = tuple(float(v) for v in _numbers(value))
            elif name in ("learning_rate", "weight_decay"):
                layer[name] = tuple(float(v) for v in _numbers(value))
            else:
                layer[name] = _to_python(value)
        if "filters" in fields:  # beta-era layers
            layer["weights"] = _simplenn_weights(
                kind, [fields["filters"], fields.get("biases", np.zeros((0, 0)))], where, index)
        if kind == "pool" and "pool" in layer:
            layer["pool"] = tuple(layer["pool"]) * (2 if len(layer["pool"]) == 1 else 1)
        result.append(layer)
    try:
        return simplenn.tidy({"layers": result, "meta": meta})
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: {error}") from None


def _simplenn_weights(kind, arrays, where, index):
    arrays = [np.asarray(a) for a in arrays]
    if kind in ("conv", "convt"):
        if not arrays or arrays[0].size == 0:
            raise ValueError(f"{where}: layers{{{index + 1}}} ({kind}) has no filters")
        out = [_filters(arrays[0])]
        if len(arrays) > 1 and arrays[1].size:
            out.append(_vector(arrays[1]))
        return out
    if kind == "bnorm":
        if len(arrays) != 3:
            raise ValueError(f"{where}: layers{{{index + 1}}} (bnorm) must have 3 weights "
                             f"(gains, biases, moments), got {len(arrays)}")
        return [_vector(arrays[0]), _vector(arrays[1]), _moments(arrays[2], where, index)]
    return [_nchw(a) for a in arrays]


def _dagnn_from_mat(contents, meta, where):
    dag = dagnn.DagNN(meta=meta)
    layer_structs = [_unwrap(v) for v in _cells(contents["layers"])]
    param_structs = [_unwrap(v) for v in _cells(contents.get("params", np.zeros((0, 0))))]
    roles = {}
    for index, entry in enumerate(layer_structs):
        fields = _struct_fields(entry)
        for required in ("name", "type", "inputs", "outputs", "params", "block"):
            if required not in fields:
                raise ValueError(f"{where}: layers({index + 1}) has no field {required!r} "
                                 f"(fields: {sorted(fields)}); not a DagNN layout")
        kind = _text(fields["type"])
        class_name = kind.split(".")[-1]
        if class_name not in dagnn.BLOCKS:
            raise ValueError(f"{where}: layer {_text(fields['name'])!r} has block type {kind!r}, "
                             f"which autonn does not provide; known: "
                             f"{', '.join('dagnn.' + k for k in dagnn.BLOCKS)}")
        options = _dagnn_options(class_name, fields["block"], where, _text(fields["name"]))
        block = dagnn.BLOCKS[class_name](**options)
        params = [_text(v) for v in _cells(fields["params"])]
        dag.add_layer(_text(fields["name"]), block, [_text(v) for v in _cells(fields["inputs"])],
                      [_text(v) for v in _cells(fields["outputs"])], params)
        for position, name in enumerate(params):
            roles[name] = (class_name, position)
    for entry in param_structs:
        fields = _struct_fields(entry)
        name = _text(fields["name"])
        try:
            target = dag.params[dag.get_param_index(name)]
        except KeyError:
            continue  # a parameter no layer uses
        target.value = _param_value(np.asarray(fields.get("value")), roles.get(name), where, name)
        if "learningRate" in fields:
            target.learning_rate = float(_numbers(fields["learningRate"])[0])
        if "weightDecay" in fields:
            target.weight_decay = float(_numbers(fields["weightDecay"])[0])
        if "trainMethod" in fields and _text(fields["trainMethod"]):
            target.train_method = _text(fields["trainMethod"])
        elif roles.get(name) == ("BatchNorm", 2):
            target.train_method = "average"
    for entry in [_unwrap(v) for v in _cells(contents.get("vars", np.zeros((0, 0))))]:
        fields = _struct_fields(entry)
        try:
            var = dag.vars[dag.get_var_index(_text(fields["name"]))]
        except KeyError:
            continue
        if "precious" in fields and _numbers(fields["precious"]).size:
            var.precious = bool(_numbers(fields["precious"])[0])
    return dag


def _dagnn_options(class_name, block, where, layer):
    options = {}
    block = _unwrap(block)
    if not _is_struct(block):
        return options
    for key, value in _struct_fields(block).items():
        if key in DAGNN_IGNORED:
            continue
        if key not in DAGNN_OPTIONS:
            raise ValueError(f"{where}: layer {layer!r} ({class_name}) has option {key!r}, "
                             f"which autonn does not know")
        name, kind = DAGNN_OPTIONS[key]
        numbers = None if kind == "text" else _numbers(value)
        if kind == "text":
            options[name] = _text(value)
        elif kind == "bool":
            options[name] = bool(numbers[0])
        elif kind == "int":
            options[name] = int(numbers[0])
        elif kind == "real":
            options[name] = float(numbers[0])
        elif kind == "reals":
            options[name] = tuple(float(v) for v in numbers)
        elif kind == "ints":
            options[name] = tuple(int(v) for v in numbers) if numbers.size != 1 \
                else int(numbers[0])
        elif kind == "dim":
            # MATLAB's H×W×C×N dimensions 1..4 -> NCHW axes.
            options[name] = {1: 2, 2: 3, 3: 1, 4: 0}[int(numbers[0])]
        elif kind == "transform":
            options[name] = float(numbers[0]) if numbers.size == 1 \
                else np.asarray(value, dtype=np.float64).reshape(2, 3)
    if class_name == "Scale" and "size" in options:
        size = tuple(np.atleast_1d(options["size"])) + (1, 1, 1, 1)
        options["size"] = (size[3], size[2], size[0], size[1])
    if class_name == "Crop" and "crop" in options:
        options["crop"] = tuple(np.atleast_1d(options["crop"]))[:2]
    return options


def _param_value(value, role, where, name):
    if value.size == 0:
        raise ValueError(f"{where}: parameter {name!r} has no value")
    if role in (("Conv", 0), ("ConvTranspose", 0)):
        return _filters(value)
    if role in (("BatchNorm", 2),):
        return _moments(value, where, name)
    if role is None or role[0] in ("Scale",):
        return _nchw(value)
    return _vector(value)


# ------------------------------------------------------------------------------ arrays
def _filters(a):
    """MATLAB H×W×C×K (convt: H×W×K×C) -> (K, C, H, W) (convt: (C, K, H, W))."""
    a = np.asarray(a)
    a = a.reshape(a.shape + (1,) * (4 - a.ndim))
    return np.ascontiguousarray(a.transpose(3, 2, 0, 1)).astype(_float_type(a), copy=False)


def _vector(a):
    a = np.asarray(a)
    return np.ascontiguousarray(a.reshape(-1)).astype(_float_type(a), copy=False)


def _moments(a, where, index):
    a = np.asarray(a)
    if a.size % 2:
        raise ValueError(f"{where}: bnorm moments of {index!r} must be C×2, got shape {a.shape}")
    return np.ascontiguousarray(a.reshape(-1, 2) if a.ndim == 2 else
                                a.reshape(2, -1).T).astype(_float_type(a), copy=False)


def _nchw(a):
    """A MATLAB H×W×C×N array -> (N, C, H, W); a vector stays a vector."""
    a = np.asarray(a)
    if a.ndim <= 2 and 1 in a.shape:
        return _vector(a)
    a = a.reshape(a.shape + (1,) * (4 - a.ndim))
    return np.ascontiguousarray(a.transpose(3, 2, 0, 1)).astype(_float_type(a), copy=False)


def _float_type(a):
    return a.dtype if a.dtype in (np.float32, np.float64) else np.float32


# ------------------------------------------------------------------------------ meta
def _meta(contents, where):
    meta = {}
    source = _unwrap(contents["meta"]) if "meta" in contents else None
    fields = _struct_fields(source) if _is_struct(source) else {}
    for key in ("normalization", "classes"):
        if key not in fields and key in contents:  # files from before meta existed
            fields[key] = contents[key]
    for key, value in fields.items():
        if key == "normalization":
            meta["normalization"] = _normalization(_unwrap(value))
        elif key == "classes":
            classes = _unwrap(value)
            if _is_struct(classes):
                meta["classes"] = {k: _string_list(v) for k, v in _struct_fields(classes).items()}
            else:
                meta["classes"] = {"name": _string_list(value)}
        else:
            meta[key] = _to_python(value)
    return meta


def _normalization(struct):
    """``meta.normalization`` under autonn's names (``image_size`` (C, H, W), ``average_image``
    (C, H, W) or (C,), ``keep_aspect``, ``crop_size``...), and under MatConvNet's own names too
    (``imageSize`` [H W C] as in the file, ``averageImage`` the same NCHW-ordered array,
    ``keepAspect``...), so that code written against either reads it."""
    if not _is_struct(struct):
        return {}
    result = {}
    for key, value in _struct_fields(struct).items():
        if key == "averageImage":
            a = np.asarray(value, dtype=np.float32)
            if a.size == 0:
                continue
            result["average_image"] = result[key] = (
                np.ascontiguousarray(a.transpose(2, 0, 1)) if a.ndim == 3 else a.reshape(-1))
        elif key == "imageSize":
            size = [int(v) for v in _numbers(value)] + [1, 1, 1]
            result["image_size"] = (size[2], size[0], size[1])
            result[key] = tuple(size[:3])
        elif key == "interpolation":
            result[key] = _text(value)
        elif key == "keepAspect":
            result["keep_aspect"] = result[key] = bool(_numbers(value)[0])
        elif key == "border":
            result[key] = tuple(int(v) for v in _numbers(value))
        elif key == "cropSize":
            result["crop_size"] = result[key] = tuple(float(v) for v in _numbers(value))
        else:
            result[key] = _to_python(value)
    return result


# ------------------------------------------------------------------------------ MATLAB values
def _read_mat(path):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"load_matconvnet: no such file {path!r}")
    with open(path, "rb") as f:
        header = f.read(128)
    if header[:8] == b"\x89HDF\r\n\x1a\n" or b"MATLAB 7.3" in header:
        return _read_mat73(path)
    where = f"load_matconvnet({os.path.basename(path)!r})"
    if not mat5.is_v5(header):
        raise FormatError(f"{where}: not a MATLAB v5 or v7.3 file (MatConvNet saves no other)")
    with open(path, "rb") as f:
        mat5.check_sizes(f, where)
    import scipy.io
    try:
        return scipy.io.loadmat(path, squeeze_me=False, struct_as_record=False,
                                chars_as_strings=True)
    except NotImplementedError:  # scipy says "Please use HDF reader for matlab v7.3 files"
        return _read_mat73(path)
    except Exception as error:
        raise FormatError(f"load_matconvnet({os.path.basename(path)!r}): cannot read it as a "
                          f"MATLAB file: {error}") from None


def _is_struct(value):
    return hasattr(value, "_fieldnames") or isinstance(value, _Mat73Struct)


def _has_field(value, name):
    return _is_struct(value) and name in _struct_fields(value)


def _struct_fields(value):
    if isinstance(value, _Mat73Struct):
        return dict(value.fields)
    return {name: getattr(value, name) for name in value._fieldnames}


def _unwrap(value):
    """Remove the 1×1 object arrays scipy wraps around structs and cell contents."""
    while isinstance(value, np.ndarray) and value.dtype == object and value.size == 1:
        value = value.reshape(-1)[0]
    return value


def _cells(value):
    """The elements of a cell or struct array, in MATLAB's (column-major) order."""
    if isinstance(value, np.ndarray) and value.dtype == object:
        return list(value.ravel(order="F"))
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, np.ndarray) and value.size == 0:
        return []
    return [value]


def _text(value):
    value = _unwrap(value)
    if isinstance(value, str):
        return value
    if isinstance(value, np.ndarray):
        if value.size == 0:
            return ""
        if value.dtype.kind == "U":
            return "".join(value.ravel(order="F")) if value.ndim > 1 and value.shape[0] > 1 \
                else str(value.ravel()[0])
        if value.dtype.kind in "ui":  # v7.3 chars are uint16 codes
            return "".join(chr(c) for c in value.ravel(order="F"))
    raise ValueError(f"load_matconvnet: expected text, got {type(value).__name__} {value!r}")


def _string_list(value):
    value = _unwrap(value) if not (isinstance(value, np.ndarray) and value.dtype == object
                                   and value.size > 1) else value
    if isinstance(value, str):
        return [value]
    if isinstance(value, np.ndarray) and value.dtype == object:
        return [_text(v) for v in value.ravel(order="F")]
    if isinstance(value, np.ndarray) and value.dtype.kind == "U":
        return [str(v).rstrip() for v in value.ravel()]
    if isinstance(value, list):
        return [_text(v) for v in value]
    return [_text(value)]


def _numbers(value):
    value = _unwrap(value)
    if isinstance(value, (int, float, bool, np.number)):
        return np.array([value], dtype=np.float64)
    return np.asarray(value, dtype=np.float64).ravel(order="F")


def _ints(value):
    numbers = _numbers(value)
    if numbers.size == 1:
        return int(numbers[0])
    return tuple(int(v) for v in numbers)


def _to_python(value):
    """A MATLAB value as plain Python: structs -> dicts, cells -> lists, char -> str, 1×1
    numbers -> float, other arrays unchanged."""
    value = _unwrap(value)
    if _is_struct(value):
        return {k: _to_python(v) for k, v in _struct_fields(value).items()}
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return [_to_python(v) for v in value.ravel(order="F")]
        if value.dtype.kind == "U":
            return _text(value)
        if value.size == 1:
            return value.reshape(-1)[0].item()
    return value


# ------------------------------------------------------------------------------ v7.3 (HDF5)
class _Mat73Struct:
    """A 1×1 MATLAB struct read from a v7.3 file (its fields already converted)."""

    def __init__(self, fields):
        self.fields = fields


def _read_mat73(path):
    """Read a v7.3 MAT-file (HDF5) into the same Python shapes scipy.io gives for v5."""
    try:
        import h5py
    except ImportError:
        raise ImportError(f"load_matconvnet: {path!r} is a MATLAB v7.3 (HDF5) file; install "
                          f"h5py to read it ('pip install h5py'), or re-save it in MATLAB with "
                          f"save(..., '-v7')") from None
    try:
        f = h5py.File(path, "r")
    except OSError as error:  # h5py's word for a file it cannot parse
        raise FormatError(f"load_matconvnet({os.path.basename(path)!r}): cannot read it as a "
                          f"MATLAB v7.3 (HDF5) file: {error}") from None
    with f:
        return {key: _h5_value(f, f[key]) for key in f.keys() if not key.startswith("#")}


def _h5_value(f, node):
    """One MATLAB value of a v7.3 file. Layout (MATLAB's): a 1×1 struct is a group with one
    member per field; a struct array is a group whose fields are datasets of object references
    without a MATLAB_class (one reference per element); a cell is a dataset of references
    (MATLAB_class 'cell') into '#refs#'; char is uint16; every array is stored transposed."""
    import h5py
    if isinstance(node, h5py.Group):
        members = {k: node[k] for k in node.keys()}
        if members and all(isinstance(m, h5py.Dataset) and h5py.check_dtype(ref=m.dtype)
                           is not None and "MATLAB_class" not in m.attrs
                           for m in members.values()):
            references = {k: np.asarray(m[()]).T for k, m in members.items()}
            shape = next(iter(references.values())).shape
            array = np.empty(shape, dtype=object)
            for index in np.ndindex(shape):
                array[index] = _Mat73Struct({k: _h5_value(f, f[r[index]])
                                             for k, r in references.items()})
            return array
        return _Mat73Struct({k: _h5_value(f, m) for k, m in members.items()})
    matlab_class = node.attrs.get("MATLAB_class", b"")
    matlab_class = matlab_class.decode() if isinstance(matlab_class, bytes) else matlab_class
    if node.attrs.get("MATLAB_empty", 0):
        return np.zeros((0, 0))
    data = node[()]
    if h5py.check_dtype(ref=node.dtype) is not None:
        # HDF5 stores MATLAB arrays transposed: reverse the axes to get MATLAB's indexing.
        references = np.asarray(data).T
        out = np.empty(references.shape, dtype=object)
        for index in np.ndindex(references.shape):
            out[index] = _h5_value(f, f[references[index]])
        return out
    data = np.asarray(data).T
    if matlab_class == "char":
        return np.array(["".join(chr(c) for c in data.ravel(order="F"))])
    if matlab_class == "logical":
        return data.astype(bool)
    if matlab_class not in ("double", "single", "int8", "uint8", "int16", "uint16", "int32",
                            "uint32", "int64", "uint64", ""):
        raise ValueError(f"load_matconvnet: unsupported MATLAB class {matlab_class!r} in the "
                         f"v7.3 file at {node.name}")
    return data


