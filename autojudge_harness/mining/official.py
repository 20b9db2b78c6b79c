"""``autojudge import``: the AutoJudge authors' published mined data as our features file.

The authors published their mined GSM8K and LiveCodeBench mismatches with hidden states (hub dataset
``mightyneighbor/Autojudge``). Their ``src/calc_hiddens.py`` (github garipovroma/autojudge) writes
them with ``torch.save``: a list of per-question dicts (or ``{"data": [...]}``, an interrupted merge)
with the fields read here:

- ``changed_token_indices``: [(position, important, target_token, draft_token), ...] in mining order;
  ``position`` indexes ``current_response`` (prompt + response), so it increases;
- ``current_response``: (1, L) token ids, prompt included: the final response of Algorithm 1, whose
  token at an unimportant mismatch is the draft's and at an important one the target's;
- ``hiddens``: one float32 tensor per mismatch: [draft ; target] last hidden states (``model.model(...)
  .last_hidden_state``, after the final norm) at ``position`` of ``current_response`` with the DRAFT
  token there, i.e. the row produced when the draft token is fed at its own position -- our miner's
  feature row. calc_hiddens.py appends the same concatenation for the sequence with the TARGET token
  there, so a row is 2 x (Hd + Ht) wide; their training keeps the first Hd + Ht (``make_setup_slice_
  mapper``: DD-DT = [:Hd+Ht], DT = [Hd:Hd+Ht]). Rows of Hd + Ht (the draft-token half only) are read too;
- ``prev_hiddens``: the same at ``position - 1`` (validated when present, not used);
- ``skip`` (question left out, as their training does); ``id`` (GSM8K) / ``global_id`` and
  ``question_id`` (LiveCodeBench) name the question; ``target_answer`` marks GSM8K, ``target_score``
  LiveCodeBench records.

Files are read with ``torch.load(weights_only=True)`` (memory-mapped): a file that needs any other
pickled object is refused unread. Files are found by content, not by name: every ``torch.save`` archive
under a folder is opened, those holding no mined records are skipped, and those with hidden states are
validated against the named pair and task. The dtype the hidden states were computed in is read from
the values: bfloat16 values cast to float32 have their low 16 bits zero, float16 values their low 13.
Positions stay indices into prompt + response (the files do not record the prompt length); training
only uses their order within a question.

    autojudge import DOWNLOADED_FOLDER --task gsm8k --target meta-llama/Llama-3.1-8B-Instruct \\
        --draft meta-llama/Llama-3.2-1B-Instruct --out official-gsm8k.features.safetensors
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from ..training import TrainingDataError
from .store import FEATURE_LAYOUT, make_manifest, write_features

if TYPE_CHECKING:
    import torch

DEFAULT_ORIGIN = "mightyneighbor/Autojudge"
FORMAT = "garipovroma/autojudge src/calc_hiddens.py (torch.save list of per-question dicts)"
REQUIRED_FIELDS = ("changed_token_indices", "current_response", "hiddens")
TASKS = {"gsm8k": "target_answer", "livecodebench": "target_score"}   # task -> the field that marks its records
TASK_MANIFEST = {"gsm8k": ("train", "final answer after 'The final answer is' equal (official miner)"),
                 "livecodebench": ("release_v5", "pass/fail score on the tests equal (official miner)")}
LLAMA3_EOS = (128001, 128008, 128009)   # <|end_of_text|>, <|eom_id|>, <|eot_id|> (generation_config)
QWEN25_EOS = (151643, 151645)           # <|endoftext|>, <|im_end|>
# hidden sizes from the authors' core_utils.MODEL_TO_HIDDEN_DIM; EOS ids from the models' generation configs
KNOWN_MODELS = {
    "meta-llama/Llama-3.2-1B-Instruct": (2048, LLAMA3_EOS),
    "meta-llama/Llama-3.1-8B-Instruct": (4096, LLAMA3_EOS),
    "meta-llama/Llama-3.1-70B-Instruct": (8192, LLAMA3_EOS),
    "meta-llama/Llama-3.1-405B-Instruct": (16384, LLAMA3_EOS),
    "Qwen/Qwen2.5-0.5B-Instruct": (896, QWEN25_EOS),
    "Qwen/Qwen2.5-7B-Instruct": (3584, QWEN25_EOS),
    "Qwen/Qwen2.5-32B-Instruct": (5120, QWEN25_EOS),
}


class OfficialFormatError(TrainingDataError):
    """A file that does not hold the official mined data in the documented format."""


@dataclass(frozen=True)
class PairSpec:
    """The model pair the official data was mined with: the names recorded in the features file, the
    hidden sizes that fix the row layout and the target's end-of-sequence token ids."""

    target: str
    draft: str
    target_hidden_size: int
    draft_hidden_size: int
    eos_ids: tuple[int, ...]

    @property
    def width(self) -> int:
        """Width of one [draft ; target] concatenation."""
        return self.draft_hidden_size + self.target_hidden_size


def pair_spec(target: str, draft: str, hidden_sizes: str | None = None, eos_ids: str | None = None) -> PairSpec:
    """The pair named by hub ids; ``hidden_sizes`` ("TARGET,DRAFT") and ``eos_ids`` ("ID,ID") are needed
    for models outside ``KNOWN_MODELS`` and override it when given."""
    known = [KNOWN_MODELS.get(name) for name in (target, draft)]
    if hidden_sizes:
        sizes = _ints(hidden_sizes, "--hidden-sizes")
        if len(sizes) != 2 or min(sizes) < 1:
            raise OfficialFormatError(f"--hidden-sizes must be TARGET,DRAFT (two positive integers), got {hidden_sizes!r}")
    elif None in known:
        unknown = [name for name, info in zip((target, draft), known) if info is None]
        raise OfficialFormatError(f"hidden sizes of {', '.join(unknown)} are not known; give --hidden-sizes "
                                  f"TARGET,DRAFT (known models: {', '.join(KNOWN_MODELS)})")
    else:
        sizes = [known[0][0], known[1][0]]
    if eos_ids:
        eos = tuple(_ints(eos_ids, "--eos-ids"))
    elif known[0] is None:
        raise OfficialFormatError(f"the end-of-sequence token ids of {target} are not known; give --eos-ids ID[,ID]")
    else:
        eos = known[0][1]
    return PairSpec(target, draft, sizes[0], sizes[1], eos)


def _ints(text: str, flag: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise OfficialFormatError(f"{flag} must be comma-separated integers, got {text!r}") from None


def is_torch_archive(path: Path) -> bool:
    """Whether ``path`` is a ``torch.save`` zip archive (a ``data.pkl`` member), by content."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name == "data.pkl" or name.endswith("/data.pkl") for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def load_archive(path: Path):
    """``torch.load`` with ``weights_only=True`` (tensors and plain containers only; nothing else is
    unpickled, so no code runs), memory-mapped; OfficialFormatError naming anything else."""
    import torch  # here, not at the top: ``autojudge import --help`` stays light

    if not is_torch_archive(path):
        raise OfficialFormatError(f"{path}: not a torch.save archive (the official files are torch.save zip archives)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as err:
        detail = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        raise OfficialFormatError(f"{path}: holds pickled objects other than tensors and plain containers, refused "
                                  f"unread (torch.load weights_only=True: "
                                  f"{'it needs ' + detail.group(1) if detail else 'not loadable'})") from None
    except (RuntimeError, OSError, EOFError, ValueError) as err:
        raise OfficialFormatError(f"{path}: unreadable torch archive ({err})") from None


def records_of(content) -> list | None:
    """The per-question dicts of a loaded file (a list, or ``{"data": list}`` from an interrupted merge);
    None when the content is no list of mined records at all (e.g. a folds file)."""
    if isinstance(content, dict) and isinstance(content.get("data"), list):
        content = content["data"]
    if not isinstance(content, list) or not content:
        return None
    if not any(isinstance(item, dict) and "changed_token_indices" in item for item in content):
        return None
    return content


def file_task(records: list) -> str | None:
    """The task whose marking field (``TASKS``) the records carry; None when none or both."""
    found = {task for task, key in TASKS.items() if any(isinstance(r, dict) and key in r for r in records)}
    return found.pop() if len(found) == 1 else None


@dataclass
class Imported:
    """Rows read from the official files, in our features-file layout (``store`` docstring)."""

    target: list = field(default_factory=list)
    draft: list = field(default_factory=list)
    labels: list = field(default_factory=list)
    question_ids: list = field(default_factory=list)
    positions: list = field(default_factory=list)
    target_tokens: list = field(default_factory=list)
    draft_tokens: list = field(default_factory=list)
    questions: int = 0
    skipped_questions: int = 0
    target_token_at_unimportant: int = 0
    low_bits: int = 0   # OR of the low 16 bits of every feature value (zero: bfloat16 values)
    question_names: dict = field(default_factory=dict)

    def arrays(self, eos_ids: tuple[int, ...]) -> dict:
        """The features-file arrays; ``target_end`` marks rows whose target token is an EOS id."""
        target_tokens = np.asarray(self.target_tokens, dtype=np.int64)
        return {"features_target": np.concatenate(self.target).astype(np.float32, copy=False),
                "features_draft": np.concatenate(self.draft).astype(np.float32, copy=False),
                "labels": np.asarray(self.labels, dtype=np.uint8),
                "target_end": np.isin(target_tokens, eos_ids).astype(np.uint8),
                "question_ids": np.asarray(self.question_ids, dtype=np.int64),
                "positions": np.asarray(self.positions, dtype=np.int64),
                "target_tokens": target_tokens,
                "draft_tokens": np.asarray(self.draft_tokens, dtype=np.int64)}

    def dtype(self) -> str:
        """The dtype the hidden states were computed in, read from the float32 values' low bits."""
        if self.low_bits & 0xFFFF == 0:
            return "bfloat16"
        return "float16" if self.low_bits & 0x1FFF == 0 else "float32"


def _check_mismatch(entry, k: int, length: int, previous: int, where: str) -> tuple[int, bool, int, int]:
    if not isinstance(entry, (list, tuple)) or len(entry) != 4:
        raise OfficialFormatError(f"{where}: changed_token_indices[{k}] must be (position, important, target_token, "
                                  f"draft_token), got {entry!r}")
    position, important, target_token, draft_token = entry
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (position, target_token, draft_token)) \
            or not isinstance(important, (bool, int)) or important not in (0, 1):
        raise OfficialFormatError(f"{where}: changed_token_indices[{k}] = {entry!r}: position and tokens must be "
                                  "integers and important a bool")
    if not previous < position < length:
        raise OfficialFormatError(f"{where}: changed_token_indices[{k}] position {position} is not after the previous "
                                  f"mismatch ({previous}) and inside current_response (length {length})")
    if target_token == draft_token or min(target_token, draft_token) < 0:
        raise OfficialFormatError(f"{where}: changed_token_indices[{k}]: target token {target_token} and draft token "
                                  f"{draft_token} must be different token ids")
    return position, bool(important), target_token, draft_token


def _check_rows(rows, name: str, count: int, spec: PairSpec, where: str) -> list[torch.Tensor]:
    import torch

    allowed = (spec.width, 2 * spec.width)
    if not isinstance(rows, (list, tuple)) or len(rows) != count:
        raise OfficialFormatError(f"{where}: {name} must be a list of one tensor per mismatch ({count}), got "
                                  f"{type(rows).__name__}{f' of {len(rows)}' if isinstance(rows, (list, tuple)) else ''}")
    for k, row in enumerate(rows):
        if not isinstance(row, torch.Tensor) or row.dim() != 1 or not row.is_floating_point():
            raise OfficialFormatError(f"{where}: {name}[{k}] must be a 1-D float tensor, got "
                                      f"{getattr(row, 'shape', type(row).__name__)}")
        if row.numel() not in allowed:
            raise OfficialFormatError(
                f"{where}: {name}[{k}] has width {row.numel()}; the pair {spec.draft} -> {spec.target} (hidden sizes "
                f"draft {spec.draft_hidden_size} + target {spec.target_hidden_size}) gives {allowed[0]} ([draft ; "
                f"target]) or {allowed[1]} (that for the draft token, then for the target token): data of "
                f"another pair, or wrong --hidden-sizes")
    return list(rows)


def read_question(record, index: int, spec: PairSpec, out: Imported, where: str) -> None:
    """Validate one per-question dict and append its rows to ``out`` (a ``skip`` record only counts)."""
    import torch

    where = f"{where}: question [{index}]"
    if not isinstance(record, dict):
        raise OfficialFormatError(f"{where} is a {type(record).__name__}, not a dict")
    if "skip" in record:
        out.skipped_questions += 1
        return
    missing = [key for key in REQUIRED_FIELDS if key not in record]
    if missing:
        raise OfficialFormatError(f"{where} lacks {', '.join(missing)} (fields of the official format: "
                                  f"{', '.join(REQUIRED_FIELDS)}, prev_hiddens)")
    response = record["current_response"]
    if not isinstance(response, torch.Tensor) or response.is_floating_point() or response.dim() not in (1, 2) \
            or (response.dim() == 2 and response.shape[0] != 1):
        raise OfficialFormatError(f"{where}: current_response must be an integer tensor of shape (1, L), got "
                                  f"{getattr(response, 'shape', type(response).__name__)}")
    response = response.reshape(-1)
    entries = record["changed_token_indices"]
    if not isinstance(entries, (list, tuple)):
        raise OfficialFormatError(f"{where}: changed_token_indices must be a list, got {type(entries).__name__}")
    mismatches, previous = [], 0
    for k, entry in enumerate(entries):
        mismatches.append(_check_mismatch(entry, k, len(response), previous, where))
        previous = mismatches[-1][0]
    hiddens = _check_rows(record["hiddens"], "hiddens", len(mismatches), spec, where)
    if "prev_hiddens" in record:
        _check_rows(record["prev_hiddens"], "prev_hiddens", len(mismatches), spec, where)
    question_id = next((record[key] for key in ("id", "global_id") if isinstance(record.get(key), int)), index)
    for k, ((position, important, target_token, draft_token), row) in enumerate(zip(mismatches, hiddens)):
        there = int(response[position])
        if there not in (target_token, draft_token):
            raise OfficialFormatError(f"{where}: current_response[{position}] is token {there}, neither the target's "
                                      f"({target_token}) nor the draft's ({draft_token}) of changed_token_indices[{k}]: "
                                      "positions do not index current_response")
        out.target_token_at_unimportant += int(not important and there == target_token)
        features = row[:spec.width].float()
        if not torch.isfinite(features).all():
            raise OfficialFormatError(f"{where}: hiddens[{k}] has non-finite values")
        out.low_bits |= int(np.bitwise_or.reduce(features.numpy().view(np.uint32) & 0xFFFF))
        out.draft.append(features[:spec.draft_hidden_size].numpy()[None])
        out.target.append(features[spec.draft_hidden_size:].numpy()[None])
        out.labels.append(int(important))
        out.question_ids.append(question_id)
        out.positions.append(position)
        out.target_tokens.append(target_token)
        out.draft_tokens.append(draft_token)
    if isinstance(record.get("question_id"), str):
        out.question_names[str(question_id)] = record["question_id"]
    out.questions += 1


def candidate_files(sources: list[Path]) -> list[tuple[Path, bool]]:
    """(file, named explicitly) for the files and folders in ``sources``; hidden files and folders
    (``.cache``, ``.git``) are left out of a folder's walk."""
    files = []
    for source in sources:
        if source.is_file():
            files.append((source, True))
        elif source.is_dir():
            for root, dirs, names in os.walk(source):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                files.extend((Path(root) / name, False) for name in sorted(names) if not name.startswith("."))
        else:
            raise OfficialFormatError(f"{source}: no such file or folder")
    return files


def import_official(sources: list[str | Path], out: str | Path, task: str, spec: PairSpec,
                    origin: str = DEFAULT_ORIGIN, progress: bool = True) -> dict:
    """Read the official files under ``sources`` (files or folders) for ``task`` and ``spec``'s pair,
    write our features file ``out`` and return its provenance. A file named explicitly must hold valid
    official data with hidden states; in a folder, files that are not mined records of this task with
    hidden states of this pair are skipped with the reason (an error if none is left)."""
    if task not in TASKS:
        raise OfficialFormatError(f"task {task!r} is not one of {', '.join(TASKS)}")
    rows, used, skipped = Imported(), [], []
    for path, explicit in tqdm(candidate_files([Path(s) for s in sources]), desc="official files",
                               disable=not progress):
        records, reason = classify(path, task, spec)
        if reason is not None:
            if explicit:
                raise OfficialFormatError(f"{path}: {reason}")
            skipped.append({"path": str(path), "reason": reason})
            continue
        before = (len(rows.labels), rows.questions)
        for index, record in enumerate(tqdm(records, desc=path.name, leave=False, disable=not progress)):
            read_question(record, index, spec, rows, str(path))
        used.append({"path": str(path), "bytes": path.stat().st_size, "questions": rows.questions - before[1],
                     "mismatches": len(rows.labels) - before[0]})
    if not rows.labels:
        found = "; ".join(f"{s['path']}: {s['reason']}" for s in skipped) or "no files"
        raise OfficialFormatError(f"no mined {task} mismatches with hidden states of {spec.draft} -> {spec.target} "
                                  f"under {', '.join(map(str, sources))} ({found})")
    duplicates = _duplicate_questions(rows)
    if duplicates:
        raise OfficialFormatError(f"question ids {duplicates[:5]} occur in more than one record (two files of one "
                                  "run, or of two runs): import each run separately")
    split, equivalence = TASK_MANIFEST[task]
    manifest = make_manifest(target_model=spec.target, draft_model=spec.draft,
                             target_hidden_size=spec.target_hidden_size, draft_hidden_size=spec.draft_hidden_size,
                             vocab_size=None, dtype=rows.dtype(), dataset=f"official:{origin}", dataset_sha256=None,
                             split=split, prompt=f"{task} (official release)", equivalence=equivalence, stop=None,
                             max_new_tokens=None, end_guard=False)
    provenance = {"source": "official", "origin": origin, "format": FORMAT, "task": task,
                  "pair": {"target": spec.target, "draft": spec.draft}, "dtype": rows.dtype(), "files": used,
                  "skipped_files": skipped, "questions": rows.questions, "mismatches": len(rows.labels),
                  "skipped_questions": rows.skipped_questions, "eos_ids": list(spec.eos_ids),
                  "target_token_at_unimportant": rows.target_token_at_unimportant,
                  "positions": "indices into prompt + response (the official files do not record the prompt length)",
                  "feature_layout": FEATURE_LAYOUT, "question_names": rows.question_names}
    write_features(Path(out), rows.arrays(spec.eos_ids), manifest, rows.questions, provenance)
    return provenance


def classify(path: Path, task: str, spec: PairSpec) -> tuple[list | None, str | None]:
    """(the records, None) when ``path`` holds official data of ``task`` with hidden states of ``spec``'s
    width, else (None, why not); every field is checked later, while reading. A torch archive that
    needs pickled objects raises (refused unread)."""
    import torch

    if not is_torch_archive(path):
        return None, "not a torch.save archive"
    records = records_of(load_archive(path))
    if records is None:
        return None, "a torch archive without mined records (no list of dicts with changed_token_indices)"
    found = file_task(records)
    if found is not None and found != task:
        return None, f"{found} records, not {task}"
    if not any(isinstance(r, dict) and "hiddens" in r for r in records):
        return None, "mined records without hidden states (lacks hiddens: the miner's output before calc_hiddens.py)"
    widths = {r["hiddens"][0].numel() for r in records if isinstance(r, dict) and isinstance(r.get("hiddens"), list)
              and r["hiddens"] and isinstance(r["hiddens"][0], torch.Tensor)}
    if widths and not widths & {spec.width, 2 * spec.width}:
        return None, (f"hidden-state width {sorted(widths)}, not {spec.width} or {2 * spec.width} of {spec.draft} -> "
                      f"{spec.target} (data of another pair, or wrong --hidden-sizes)")
    return records, None


def _duplicate_questions(rows: Imported) -> list[int]:
    ids = np.asarray(rows.question_ids)
    # a question's rows are contiguous; an id that starts two runs of rows was recorded twice
    starts = ids[np.r_[True, ids[1:] != ids[:-1]]]
    unique, counts = np.unique(starts, return_counts=True)
    return unique[counts > 1].tolist()


def configure_parser(p) -> None:
    p.description = ("Import the AutoJudge authors' published mined mismatches with hidden states (hub dataset "
                     f"{DEFAULT_ORIGIN}) as a features file for autojudge train.")
    p.epilog = ("Reads: files or folders (e.g. huggingface_hub.snapshot_download(repo_id='mightyneighbor/Autojudge', "
                "repo_type='dataset')); files are recognised by content. Writes: --out, a features.safetensors "
                "(DT = target half, DD-DT = [draft ; target]) whose metadata records the source, pair, task and dtype. "
                "Then: autojudge train --features OUT --out JUDGE --backend vllm (DT) or hf (DD-DT). See docs/judges.md.")
    p.add_argument("sources", nargs="+", type=Path, help="official files or folders holding them")
    p.add_argument("--out", required=True, type=Path, help="features file to write (.safetensors)")
    p.add_argument("--task", required=True, choices=tuple(TASKS), help="which mined data to import")
    p.add_argument("--target", required=True, help="the target's hub id, e.g. meta-llama/Llama-3.1-8B-Instruct "
                   "(recorded; autojudge_hf / autojudge_vllm accept the judge for this name)")
    p.add_argument("--draft", required=True, help="the draft's hub id, e.g. meta-llama/Llama-3.2-1B-Instruct")
    p.add_argument("--hidden-sizes", help="TARGET,DRAFT hidden sizes (needed for models not in the known list)")
    p.add_argument("--eos-ids", help="the target's end-of-sequence token ids, comma-separated (for unknown models)")
    p.add_argument("--origin", default=DEFAULT_ORIGIN, help="where the files came from (recorded as provenance)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args) -> int:
    spec = pair_spec(args.target, args.draft, args.hidden_sizes, args.eos_ids)
    provenance = import_official(args.sources, args.out, args.task, spec, args.origin, progress=not args.no_progress)
    for item in provenance["skipped_files"]:
        print(f"skipped {item['path']}: {item['reason']}")
    for item in provenance["files"]:
        print(f"read {item['path']}: {item['questions']} questions, {item['mismatches']} mismatches")
    print(f"wrote {args.out}: {provenance['mismatches']} mismatches from {provenance['questions']} questions "
          f"({provenance['skipped_questions']} skipped records), hidden states in {provenance['dtype']}")
    if provenance["target_token_at_unimportant"]:
        print(f"note: {provenance['target_token_at_unimportant']} unimportant mismatches have the target's token in "
              "current_response (the authors' earlier variant; the hidden states are the draft token's either way)")
    print(f"next: autojudge train --features {args.out} --out JUDGE.safetensors --backend vllm   (DT; --backend hf: DD-DT)")
    return 0
