"""``vtatune disasm FILE``: list the instructions of a program bundle or a raw stream."""
from __future__ import annotations

import argparse
import dataclasses


from ..errors import DecodeError
from ..hardware import isa
from ..hardware.disasm import format_insn, format_uop, listing, module_of
from ..hardware.isa import MemInsn, MemType, Opcode
from ..sim.bundle import load_bundle
from .common import add_hw, add_json, emit_json, load_hw


def register(sub) -> None:
    p = sub.add_parser("disasm", help="disassemble a program bundle (.npz) or raw instruction bytes")
    p.add_argument("file", help="a program bundle (.npz) or a binary file of 16-byte instructions")
    p.add_argument("--uops", action="store_true", help="also list the micro-ops each LOAD UOP brings in (bundles)")
    add_hw(p)
    add_json(p)
    p.set_defaults(func=cmd_disasm)


def cmd_disasm(args: argparse.Namespace) -> int:
    uop_source = None
    if args.file.endswith(".npz"):
        bundle = load_bundle(args.file)
        hw = bundle.hw
        dram = bundle.to_dram()
        raw = dram.read(bundle.insn_addr, bundle.insn_count * isa.INSN_BYTES)
        uop_source = dram
    else:
        hw = load_hw(args)
        with open(args.file, "rb") as f:
            raw = f.read()
        if len(raw) % isa.INSN_BYTES:
            raise DecodeError(f"{args.file}: {len(raw)} bytes is not a multiple of {isa.INSN_BYTES}")
    insns = isa.decode_program(raw, hw)

    def uops_of(insn):
        if (uop_source is None or not isinstance(insn, MemInsn) or insn.opcode != Opcode.LOAD
                or insn.memory_type != MemType.UOP or insn.x_size == 0):
            return []
        data = uop_source.read(insn.dram_base * 4, insn.x_size * 4)
        return isa.decode_uops(data, hw)

    if args.json:
        out = []
        for i, insn in enumerate(insns):
            row = {"index": i, "kind": type(insn).__name__, "opcode": int(insn.opcode),
                   "module": module_of(insn), **{k: int(v) for k, v in insn.field_values.items()},
                   "text": format_insn(insn)}
            if args.uops:
                row["uops"] = [dataclasses.asdict(u) for u in uops_of(insn)]
            out.append(row)
        emit_json({"config": hw.name, "insn_count": len(insns), "instructions": out})
        return 0
    print(f"# {hw.name}: {len(insns)} instructions")
    for i, line in enumerate(listing(insns)):
        print(line)
        if args.uops:
            insn = insns[i]
            for k, u in enumerate(uops_of(insn)):
                print(f"        {format_uop(insn.sram_base + k, u)}")
    return 0
