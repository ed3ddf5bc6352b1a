"""``vtatune disasm FILE``: list the instructions of a program bundle or a raw stream."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from ..errors import DecodeError, ResourceLimitError
from ..hardware import isa
from ..hardware.disasm import format_insn, format_uop, listing, module_of
from ..hardware.isa import MemInsn, MemType, Opcode
from ..sim.bundle import load_bundle
from ..sim.fsim import MAX_INSNS
from .common import add_hw, add_json, load_hw

#: Instructions decoded at a time, so memory does not grow with the length of the stream.
CHUNK = 1 << 14


def register(sub) -> None:
    p = sub.add_parser("disasm", help="disassemble a program bundle (.npz) or raw instruction bytes")
    p.add_argument("file", help="a program bundle (.npz) or a binary file of 16-byte instructions")
    p.add_argument("--uops", action="store_true", help="also list the micro-ops each LOAD UOP brings in (bundles)")
    add_hw(p)
    add_json(p)
    p.set_defaults(func=cmd_disasm)


def _read_raw(path: str) -> bytes:
    """A raw stream, read with the simulators' cap on instructions (``/dev/zero`` has no end)."""
    limit = MAX_INSNS * isa.INSN_BYTES
    with open(path, "rb") as f:
        raw = f.read(limit + 1)
    if len(raw) > limit:
        raise ResourceLimitError("<file>", len(raw), limit,
                                 f"{path}: more bytes than the {MAX_INSNS} instructions a program may have")
    if len(raw) % isa.INSN_BYTES:
        raise DecodeError(f"{path}: {len(raw)} bytes is not a multiple of {isa.INSN_BYTES}")
    return raw


def cmd_disasm(args: argparse.Namespace) -> int:
    uop_source = None
    if args.file.endswith(".npz"):
        bundle = load_bundle(args.file)
        hw = bundle.hw
        if bundle.insn_count > MAX_INSNS:
            raise ResourceLimitError("insn_count", bundle.insn_count, MAX_INSNS,
                                     f"{args.file}: more instructions than a program may have")
        dram = bundle.to_dram()
        raw = dram.read(bundle.insn_addr, bundle.insn_count * isa.INSN_BYTES)
        uop_source = dram
    else:
        hw = load_hw(args)
        raw = _read_raw(args.file)
    count = len(raw) // isa.INSN_BYTES

    def chunks():
        for start in range(0, count, CHUNK):
            stop = min(count, start + CHUNK)
            yield start, isa.decode_program(raw[start * isa.INSN_BYTES:stop * isa.INSN_BYTES], hw)

    def uops_of(insn):
        if (uop_source is None or not isinstance(insn, MemInsn) or insn.opcode != Opcode.LOAD
                or insn.memory_type != MemType.UOP or insn.x_size == 0):
            return []
        data = uop_source.read(insn.dram_base * 4, insn.x_size * 4)
        return isa.decode_uops(data, hw)

    if args.json:
        def rows():
            for start, insns in chunks():
                for i, insn in enumerate(insns, start):
                    row = {"index": i, "kind": type(insn).__name__, "opcode": int(insn.opcode),
                           "module": module_of(insn), **{k: int(v) for k, v in insn.field_values.items()},
                           "text": format_insn(insn)}
                    if args.uops:
                        row["uops"] = [dataclasses.asdict(u) for u in uops_of(insn)]
                    yield row
        _emit_listing_json({"config": hw.name, "insn_count": count}, "instructions", rows())
        return 0
    print(f"# {hw.name}: {count} instructions")
    width = len(str(max(count - 1, 0)))
    for start, insns in chunks():
        for insn, line in zip(insns, listing(insns, start, width)):
            print(line)
            if args.uops:
                for k, u in enumerate(uops_of(insn)):
                    print(f"        {format_uop(insn.sram_base + k, u)}")
    return 0


def _emit_listing_json(head: dict, key: str, rows) -> None:
    """``emit_json({**head, key: list(rows)})``, byte for byte, written row by row."""
    out = sys.stdout
    text = json.dumps({**head, key: []}, indent=2)
    before, after = text.rsplit("[]", 1)
    out.write(before)
    first = True
    for row in rows:
        out.write("[\n" if first else ",\n")
        first = False
        out.write("\n".join("    " + line for line in json.dumps(row, indent=2).splitlines()))
    out.write("[]" if first else "\n  ]")
    out.write(after + "\n")
