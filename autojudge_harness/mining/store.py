"""Mined records on disk: sharded, append-only, crash-safe, no pickle.

Layout of one run directory (``--out DIR``)::

    DIR/manifest.json                     the run's identity (see ``MANIFEST_KEYS``)
    DIR/shard-000-of-002/manifest.json    a copy (a shard copied from another run is detected)
    DIR/shard-000-of-002/records.jsonl    one JSON object per question, append-only
    DIR/shard-000-of-002/features.f32     raw little-endian float32 rows, append-only
    DIR/merged.jsonl                      after ``merge``: all records, sorted by question id
    DIR/features.safetensors              after ``merge``: the consolidated arrays

``manifest.json``: {"format": "autojudge-mined/1", "target_model", "draft_model",
"target_hidden_size", "draft_hidden_size", "vocab_size", "dtype", "dataset", "dataset_sha256",
"split", "prompt", "equivalence", "stop", "max_new_tokens", "end_guard", "feature_layout"}. Everything that
changes what a record means is in it; settings that do not (shard split, limit, offset,
threads) are not.

A question record (one ``records.jsonl`` line)::

    {"question_id": 12,               # index of the question in the dataset (0-based)
     "question_sha1": "…",            # sha1 of the question text (detects a different data file)
     "gold": "72",                    # the dataset's answer (not used for labels)
     "prompt_ids": [...],             # the prompt as fed to both models (chat template applied)
     "initial_response_ids": [...],   # the target's greedy response R (EOS included if produced)
     "response_ids": [...],           # the final R after Algorithm 1's replacements
     "answer": "72" | null,           # the target's answer a* (labels are relative to it)
     "skipped": null | "no_target_answer",
     "feature_row": 1234,             # first row of this record's features in features.f32
     "mismatches": [{"position": 5, "important": true, "target_token": 11, "draft_token": 17,
                     "target_end": false}, ...],   # target_end: the target's token ends R there
     "stats": {"seconds": …, "target_tokens_fed": …, …}}

Mismatch k of a record owns feature row ``feature_row + k`` of ``features.f32``; a row is
``target_hidden_size + draft_hidden_size`` float32 values: [target hidden ; draft hidden]
(DT = the first part, DD-DT = [draft ; target]). ``response_ids[:position]`` is the exact prefix
the mismatch was mined on (later replacements only happen after it), and ``response_ids[position]``
is the draft token for an unimportant mismatch and the target token for an important one.

Crash safety: a record's feature rows are written and fsynced BEFORE its JSONL line, and the line
is one write of ``json + "\\n"``. A kill loses at most the questions in flight (one, or up to the
batched miner's batch size); on reopening, a truncated last line (no newline) is dropped and
feature rows beyond the last record are cut, then
mining resumes by skipping question ids already present in any shard of the run. A corrupt line
anywhere else, a missing features file, a manifest from another run or duplicate question ids are
errors (ValueError naming the file and the problem).

``features.safetensors`` (merge): features_target (N, Ht) f32, features_draft (N, Hd) f32,
labels (N,) u8 (1 = important), target_end (N,) u8 (1 = the target's token ends the response),
question_ids (N,) i64, positions (N,) i64, target_tokens (N,) i64, draft_tokens (N,) i64; the manifest as JSON in the metadata key "manifest". ``merged.jsonl`` holds
the question records with "feature_row" pointing into these arrays. Metadata key "provenance" (JSON,
``read_provenance``): where the rows came from -- {"source": "autojudge mine", "run": DIR} for a merge,
{"source": "official", ...} for ``autojudge import`` (``mining.official``); files written before this
key have none.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMAT = "autojudge-mined/1"
MANIFEST_KEYS = ("format", "target_model", "draft_model", "target_hidden_size", "draft_hidden_size", "vocab_size",
                 "dtype", "dataset", "dataset_sha256", "split", "prompt", "equivalence", "stop", "max_new_tokens",
                 "end_guard", "feature_layout")
FEATURE_LAYOUT = "row = [target hidden (target_hidden_size) ; draft hidden (draft_hidden_size)], float32 LE"
RECORD_KEYS = ("question_id", "prompt_ids", "initial_response_ids", "response_ids", "answer", "skipped",
               "feature_row", "mismatches")
MISMATCH_KEYS = ("position", "important", "target_token", "draft_token", "target_end")
SHARD_RE = re.compile(r"^shard-(\d+)-of-(\d+)$")
RECORDS, FEATURES, MANIFEST = "records.jsonl", "features.f32", "manifest.json"
MERGED_JSONL, MERGED_FEATURES = "merged.jsonl", "features.safetensors"
MINED_SOURCE = "autojudge mine"


def make_manifest(**fields) -> dict:
    """A manifest with exactly ``MANIFEST_KEYS`` ("format" and "feature_layout" filled in)."""
    fields = {"format": FORMAT, "feature_layout": FEATURE_LAYOUT, **fields}
    missing = [k for k in MANIFEST_KEYS if k not in fields]
    extra = [k for k in fields if k not in MANIFEST_KEYS]
    if missing or extra:
        raise ValueError(f"manifest fields: missing {missing}, unknown {extra}")
    return {k: fields[k] for k in MANIFEST_KEYS}


def parse_shard(spec: str) -> tuple[int, int]:
    """``"i/n"`` -> (i, n) with 0 <= i < n."""
    match = re.fullmatch(r"(\d+)/(\d+)", spec.strip())
    if not match or not 0 <= int(match.group(1)) < int(match.group(2)):
        raise ValueError(f"--shard must be i/n with 0 <= i < n, got {spec!r}")
    return int(match.group(1)), int(match.group(2))


def shard_name(index: int, count: int) -> str:
    return f"shard-{index:03d}-of-{count:03d}"


def read_manifest(path: Path) -> dict:
    path = Path(path)
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: missing manifest") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: corrupt manifest ({err.msg})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: not an {FORMAT} manifest")
    return manifest


def check_manifest(found: dict, expected: dict, where: Path | str) -> None:
    """ValueError naming ``where`` and every differing key unless the manifests agree."""
    diffs = [f"{k}: {found.get(k)!r} (expected {expected.get(k)!r})"
             for k in MANIFEST_KEYS if found.get(k) != expected.get(k)]
    if diffs:
        raise ValueError(f"{where}: records from another run/model pair -- " + "; ".join(diffs))


def _write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    os.replace(tmp, path)


def init_run(out: Path, manifest: dict) -> Path:
    """Create ``out`` with ``manifest`` or check an existing run's manifest against it."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / MANIFEST
    if path.exists():
        check_manifest(read_manifest(path), manifest, path)
    else:
        _write_json_atomic(path, manifest)
    return out


def _row_width(manifest: dict) -> int:
    return int(manifest["target_hidden_size"]) + int(manifest["draft_hidden_size"])


def _validate_record(record, where: str) -> None:
    if not isinstance(record, dict):
        raise ValueError(f"{where}: record is not a JSON object")
    missing = [k for k in RECORD_KEYS if k not in record]
    if missing:
        raise ValueError(f"{where}: record lacks {missing}")
    if not isinstance(record["question_id"], int) or not isinstance(record["mismatches"], list):
        raise ValueError(f"{where}: bad question_id or mismatches")
    for m in record["mismatches"]:
        if not isinstance(m, dict) or any(k not in m for k in MISMATCH_KEYS):
            raise ValueError(f"{where}: bad mismatch entry {m!r}")


def _scan_records(path: Path, tolerate_truncated: bool) -> tuple[list[dict], int]:
    """(records, byte length of the complete lines). A last line without a newline is dropped when
    ``tolerate_truncated`` (a write cut by a kill), else an error; any other bad line is an error."""
    data = path.read_bytes()
    records, good_end, pos, lineno = [], 0, 0, 0
    seen = set()
    while pos < len(data):
        lineno += 1
        nl = data.find(b"\n", pos)
        where = f"{path}:{lineno}"
        if nl < 0:
            if tolerate_truncated:
                warnings.warn(f"{where}: dropping a truncated last record (interrupted write)")
                break
            raise ValueError(f"{where}: truncated last record")
        line = data[pos:nl]
        pos = nl + 1
        if not line.strip():
            good_end = pos
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{where}: corrupt record ({err})") from None
        _validate_record(record, where)
        if record["question_id"] in seen:
            raise ValueError(f"{where}: duplicate question_id {record['question_id']}")
        seen.add(record["question_id"])
        records.append(record)
        good_end = pos
    return records, good_end


@dataclass
class Shard:
    """A shard's validated records and its features as a read-only (rows, width) array."""

    path: Path
    manifest: dict
    records: list[dict]
    features: np.ndarray


def read_shard(shard_dir: Path, expected_manifest: dict | None = None, allow_empty: bool = False,
               tolerate_truncated: bool = True) -> Shard:
    """Load and validate one shard directory (manifest, records, feature rows)."""
    shard_dir = Path(shard_dir)
    if not shard_dir.is_dir():
        raise ValueError(f"{shard_dir}: not a shard directory")
    manifest = read_manifest(shard_dir / MANIFEST)
    if expected_manifest is not None:
        check_manifest(manifest, expected_manifest, shard_dir / MANIFEST)
    path = shard_dir / RECORDS
    if not path.exists() or path.stat().st_size == 0:
        if allow_empty:
            records = []
        else:
            raise ValueError(f"{shard_dir}: empty shard (no records in {RECORDS}); mine it or remove it")
    else:
        records, _ = _scan_records(path, tolerate_truncated)
        if not records and not allow_empty:
            raise ValueError(f"{shard_dir}: empty shard (no complete records in {RECORDS})")
    width = _row_width(manifest)
    needed = 0
    for record in records:
        if record["feature_row"] != needed:
            raise ValueError(f"{path}: question {record['question_id']} has feature_row {record['feature_row']}, "
                             f"expected {needed} (records and {FEATURES} disagree)")
        needed += len(record["mismatches"])
    fpath = shard_dir / FEATURES
    size = fpath.stat().st_size if fpath.exists() else 0
    if size < needed * width * 4:
        raise ValueError(f"{fpath}: holds {size // (width * 4)} feature rows, the records need {needed} "
                         "(missing or truncated features file)")
    if needed:
        features = np.memmap(fpath, dtype="<f4", mode="r", shape=(needed, width))
    else:
        features = np.zeros((0, width), dtype="<f4")
    return Shard(shard_dir, manifest, records, features)


def shard_dirs(run_dir: Path) -> list[Path]:
    return sorted(p for p in Path(run_dir).iterdir() if p.is_dir() and SHARD_RE.match(p.name))


def done_question_ids(run_dir: Path, manifest: dict) -> set[int]:
    """Question ids already recorded in any shard of the run (for resuming under any split)."""
    done: set[int] = set()
    for d in shard_dirs(run_dir):
        if (d / RECORDS).exists():
            done.update(r["question_id"] for r in read_shard(d, manifest, allow_empty=True).records)
    return done


class ShardWriter:
    """Append-only writer of one shard; recovers from an interrupted previous run on open.
    Holds an exclusive lock on the shard for its lifetime (a second writer fails fast)."""

    def __init__(self, run_dir: Path, index: int, count: int, manifest: dict):
        self.dir = Path(run_dir) / shard_name(index, count)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.manifest = manifest
        self.width = _row_width(manifest)
        self._lock = open(self.dir / ".lock", "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise ValueError(f"{self.dir}: another process is writing this shard") from None
        mpath = self.dir / MANIFEST
        if mpath.exists():
            check_manifest(read_manifest(mpath), manifest, mpath)
        else:
            _write_json_atomic(mpath, manifest)
        rpath, fpath = self.dir / RECORDS, self.dir / FEATURES
        records, good_end = _scan_records(rpath, True) if rpath.exists() else ([], 0)
        rows = sum(len(r["mismatches"]) for r in records)
        if rpath.exists() and rpath.stat().st_size != good_end:
            os.truncate(rpath, good_end)  # drop the interrupted last line
        fsize = fpath.stat().st_size if fpath.exists() else 0
        if fsize < rows * self.width * 4:
            raise ValueError(f"{fpath}: holds {fsize // (self.width * 4)} feature rows, the records need {rows}")
        if fsize > rows * self.width * 4:
            os.truncate(fpath, rows * self.width * 4)  # rows of a question whose record was never written
        self.rows = rows
        self.question_ids = {r["question_id"] for r in records}
        self._records = open(rpath, "ab")
        self._features = open(fpath, "ab")

    def append(self, record: dict, target_features: np.ndarray, draft_features: np.ndarray) -> None:
        """Write one question: features first (fsynced), then its JSONL line (fsynced)."""
        n = len(record["mismatches"])
        tf, df = np.asarray(target_features, dtype="<f4"), np.asarray(draft_features, dtype="<f4")
        if n and (tf.shape[0] != n or df.shape[0] != n or tf.ndim != 2 or df.ndim != 2
                  or tf.shape[1] + df.shape[1] != self.width):
            raise ValueError(f"features {tf.shape} + {df.shape} do not fit {n} mismatches x {self.width} "
                             "(target + draft hidden sizes of the manifest)")
        if record["question_id"] in self.question_ids:
            raise ValueError(f"{self.dir}: question {record['question_id']} is already recorded")
        record = {**record, "feature_row": self.rows}
        _validate_record(record, str(self.dir))
        if n:
            self._features.write(np.ascontiguousarray(np.concatenate([tf, df], axis=1)).tobytes())
            self._features.flush()
            os.fsync(self._features.fileno())
        self._records.write((json.dumps(record, separators=(",", ":")) + "\n").encode())
        self._records.flush()
        os.fsync(self._records.fileno())
        self.rows += n
        self.question_ids.add(record["question_id"])

    def close(self) -> None:
        for f in (self._records, self._features, self._lock):
            f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _ranges(ids: list[int]) -> str:
    """Sorted ids as "3, 5-9, 12"."""
    spans: list[list[int]] = []
    for qid in ids:
        if spans and qid == spans[-1][1] + 1:
            spans[-1][1] = qid
        else:
            spans.append([qid, qid])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def missing_parts(dirs: list[Path], question_ids: set[int]) -> list[str]:
    """What an incomplete run lacks: shards of a split (``shard-III-of-NNN``) that are absent, and
    question ids absent between the lowest and highest recorded one."""
    found = {tuple(map(int, SHARD_RE.match(d.name).groups())) for d in dirs}
    counts = {count for _, count in found}
    absent = []
    if len(counts) == 1:  # one split: each of its shards is expected (mixed splits: only the id gaps tell)
        count = counts.pop()
        absent = [shard_name(i, count) for i in range(count) if (i, count) not in found]
    parts = [f"shards {', '.join(absent)}"] if absent else []
    gaps = sorted(set(range(min(question_ids), max(question_ids) + 1)) - question_ids) if question_ids else []
    if gaps:
        parts.append(f"question ids {_ranges(gaps)}")
    return parts


def write_features(path: Path, arrays: dict, manifest: dict, questions: int, provenance: dict) -> Path:
    """Write a features file (arrays as in the module docstring; the manifest, question count and
    provenance in its metadata), replacing ``path`` atomically."""
    from safetensors.numpy import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".features-")
    os.close(fd)
    save_file(arrays, tmp, metadata={"manifest": json.dumps(manifest), "questions": str(questions),
                                     "provenance": json.dumps(provenance)})
    os.replace(tmp, path)
    return path


def merge(run_dir: Path) -> tuple[Path, Path]:
    """Consolidate all shards of ``run_dir`` into merged.jsonl + features.safetensors (atomic
    replace). Every shard must be valid and non-empty; duplicate question ids are an error. An
    incomplete run (``missing_parts``) is merged with a warning naming what is missing."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"{run_dir}: no such run directory")
    manifest = read_manifest(run_dir / MANIFEST)
    dirs = shard_dirs(run_dir)
    if not dirs:
        raise ValueError(f"{run_dir}: no shard directories (shard-III-of-NNN) to merge")
    shards = [read_shard(d, manifest, tolerate_truncated=False) for d in dirs]
    owner: dict[int, Path] = {}
    items = []
    for shard in shards:
        for record in shard.records:
            qid = record["question_id"]
            if qid in owner:
                raise ValueError(f"question {qid} is recorded twice: in {owner[qid]} and {shard.path}")
            owner[qid] = shard.path
            items.append((qid, shard, record))
    items.sort(key=lambda item: item[0])
    missing = missing_parts(dirs, set(owner))
    if missing:
        warnings.warn(f"{run_dir}: merging an incomplete run; missing: {'; '.join(missing)} (rerun the "
                      "interrupted autojudge mine command to finish them, then merge again)", stacklevel=2)
    ht, hd = int(manifest["target_hidden_size"]), int(manifest["draft_hidden_size"])
    blocks, lines, cols, row = [], [], {k: [] for k in ("question_ids", "positions", "labels", "target_end",
                                                        "target_tokens", "draft_tokens")}, 0
    for qid, shard, record in items:
        n = len(record["mismatches"])
        blocks.append(np.asarray(shard.features[record["feature_row"]:record["feature_row"] + n]))
        lines.append(json.dumps({**record, "feature_row": row}, separators=(",", ":")))
        for m in record["mismatches"]:
            cols["question_ids"].append(qid)
            cols["positions"].append(m["position"])
            cols["labels"].append(int(bool(m["important"])))
            cols["target_end"].append(int(bool(m["target_end"])))
            cols["target_tokens"].append(m["target_token"])
            cols["draft_tokens"].append(m["draft_token"])
        row += n
    feats = np.concatenate(blocks) if blocks else np.zeros((0, ht + hd), dtype="<f4")
    arrays = {"features_target": np.ascontiguousarray(feats[:, :ht], dtype=np.float32),
              "features_draft": np.ascontiguousarray(feats[:, ht:], dtype=np.float32),
              "labels": np.asarray(cols["labels"], dtype=np.uint8),
              "target_end": np.asarray(cols["target_end"], dtype=np.uint8)}
    for k in ("question_ids", "positions", "target_tokens", "draft_tokens"):
        arrays[k] = np.asarray(cols[k], dtype=np.int64)
    jsonl, st = run_dir / MERGED_JSONL, run_dir / MERGED_FEATURES
    write_features(st, arrays, manifest, len(items), {"source": MINED_SOURCE, "run": str(run_dir)})
    tmp_jsonl = run_dir / f".{MERGED_JSONL}.tmp"
    tmp_jsonl.write_text("".join(line + "\n" for line in lines))
    os.replace(tmp_jsonl, jsonl)
    return jsonl, st


@dataclass
class MinedDataset:
    """A merged run: arrays (see module docstring), question records, manifest."""

    manifest: dict
    records: list[dict]
    arrays: dict

    def features(self, kind: str = "DD-DT") -> np.ndarray:
        """"DT" -> target hidden states; "DD-DT" -> [draft ; target]."""
        if kind == "DT":
            return self.arrays["features_target"]
        if kind == "DD-DT":
            return np.concatenate([self.arrays["features_draft"], self.arrays["features_target"]], axis=1)
        raise ValueError(f"unknown feature kind {kind!r}; use 'DT' or 'DD-DT'")


def read_features(path: Path) -> tuple[dict, dict]:
    """(arrays, manifest) of a merged ``features.safetensors``; ValueError if unreadable or not one."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            arrays = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # safetensors raises its own error types
        raise ValueError(f"{path}: not a readable safetensors file ({err})") from None
    if "manifest" not in meta:
        raise ValueError(f"{path}: no 'manifest' metadata (not a mined features file)")
    return arrays, json.loads(meta["manifest"])


def read_provenance(path: Path) -> dict:
    """The "provenance" metadata of a features file ({} for files written before it existed)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
    except Exception as err:  # safetensors raises its own error types
        raise ValueError(f"{path}: not a readable safetensors file ({err})") from None
    return json.loads(meta.get("provenance", "{}"))


def load_merged(run_dir: Path, expected_manifest: dict | None = None) -> MinedDataset:
    """Load merged.jsonl + features.safetensors; ValueError on missing/inconsistent files or a
    manifest that differs from ``expected_manifest`` (e.g. another model pair)."""
    run_dir = Path(run_dir)
    st, jsonl = run_dir / MERGED_FEATURES, run_dir / MERGED_JSONL
    if not st.exists() or not jsonl.exists():
        raise ValueError(f"{run_dir}: not merged yet (run autojudge mine --out {run_dir} --merge)")
    arrays, manifest = read_features(st)
    if expected_manifest is not None:
        check_manifest(manifest, expected_manifest, st)
    records, _ = _scan_records(jsonl, tolerate_truncated=False)
    n = sum(len(r["mismatches"]) for r in records)
    expected = {"features_target": (n, manifest["target_hidden_size"]),
                "features_draft": (n, manifest["draft_hidden_size"])}
    for k in ("labels", "question_ids", "positions", "target_tokens", "draft_tokens"):
        expected[k] = (n,)
    for k, shape in expected.items():
        if k not in arrays or tuple(arrays[k].shape) != tuple(shape):
            raise ValueError(f"{st}: array {k!r} has shape {getattr(arrays.get(k), 'shape', None)}, "
                             f"expected {shape} from {jsonl}")
    return MinedDataset(manifest, records, arrays)
