"""The private-test unpickler refuses every opcode that could reach code, checked before anything is
built: a registered copyreg extension (EXT1/EXT2/EXT4, served from copyreg's cache without
``find_class``) runs nothing."""

from __future__ import annotations

import copyreg
import os
import pickle
import struct

import pytest

from autojudge_harness import livecodebench as lcb

CODES = {"EXT1": 0xF1, "EXT2": 0xF1F1, "EXT4": 0x7EADBEEF}  # the opcode each code is pickled with


@pytest.fixture(params=sorted(CODES))
def system_extension(request):
    """(opcode, code): ``os.system`` registered as a copyreg extension and already in copyreg's cache
    (as after any ordinary unpickling of it), under a code pickled with that opcode."""
    code = CODES[request.param]
    copyreg.add_extension(os.system.__module__, "system", code)
    copyreg._extension_cache[code] = os.system
    yield request.param, code
    copyreg.remove_extension(os.system.__module__, "system", code)


def ext_payload(opcode: str, code: int, command: str) -> bytes:
    """A protocol-2 pickle that calls the extension ``code`` with ``command``."""
    byte, layout = {"EXT1": (b"\x82", "<B"), "EXT2": (b"\x83", "<H"), "EXT4": (b"\x84", "<i")}[opcode]
    ext = byte + struct.pack(layout, code)
    text = command.encode()
    return b"\x80\x02" + ext + b"X" + struct.pack("<I", len(text)) + text + b"\x85R."


def test_extension_opcodes_are_refused_and_nothing_runs(system_extension, tmp_path):
    opcode, code = system_extension
    marker = tmp_path / "pwned"
    payload = ext_payload(opcode, code, f"touch {marker}")
    assert pickle.dumps(os.system, protocol=2)[2:3] == payload[2:3]  # os.system pickles as this extension
    with pytest.raises(lcb.UnsafePickleError, match=f"opcode {opcode} at byte 2"):
        lcb.load_plain_pickle(payload)
    with pytest.raises(lcb.UnsafePickleError, match=f"problem z: refusing to unpickle opcode {opcode}"):
        lcb.decode_private_tests(lcb.base64.b64encode(lcb.zlib.compress(payload)).decode(), "problem z")
    assert not marker.exists()


def test_a_refused_opcode_late_in_the_pickle_builds_nothing_before(system_extension, tmp_path):
    """The check covers the whole pickle before the first object is built."""
    opcode, code = system_extension
    marker = tmp_path / "pwned"
    head = pickle.dumps(["plain data"] * 1000, protocol=2)[:-1] + b"0"  # a list, then POP
    payload = head + ext_payload(opcode, code, f"touch {marker}")[2:]
    with pytest.raises(lcb.UnsafePickleError, match=f"opcode {opcode}"):
        lcb.load_plain_pickle(payload)
    assert not marker.exists()


@pytest.mark.parametrize("opcode, payload", [
    ("REDUCE", b"\x80\x02)\x85R."), ("BUILD", b"\x80\x02}}b."), ("NEWOBJ", b"\x80\x02))\x81."),
    ("BINPERSID", b"\x80\x02X\x01\x00\x00\x00xQ."), ("NEXT_BUFFER", b"\x80\x05\x97.")])
def test_other_object_building_opcodes_are_refused(opcode, payload):
    with pytest.raises(lcb.UnsafePickleError, match=f"opcode {opcode}"):
        lcb.load_plain_pickle(payload)
