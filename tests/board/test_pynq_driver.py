"""The PYNQ driver and backend against the fake ``pynq`` package (tests/board/fake_pynq.py),
which checks the launch sequence of the dossier's §5.1-§5.2 and executes with fsim."""
import os
import subprocess
import sys

import numpy as np
import pytest

import vtatune.board.driver as D
from vtatune.board.backends import create_backend
from vtatune.board.client import BoardClient
from vtatune.errors import BoardHangError, ConfigurationError, MissingDependencyError

from .conftest import HW
from .fake_pynq import SequenceError

FETCH, LOAD, COMPUTE, STORE = 0x43C00000, 0x43C01000, 0x43C02000, 0x43C03000


def expected_launch(count, addr):
    """§5.2 as written in the dossier, step 2 then step 3 (module, offset, value)."""
    return [("fetch", 0x10, count), ("fetch", 0x18, addr),
            ("load", 0x10, 0), ("load", 0x18, 0), ("compute", 0x20, 0), ("compute", 0x28, 0),
            ("store", 0x10, 0),
            ("fetch", 0x00, 0x1), ("load", 0x00, 0x81), ("compute", 0x00, 0x81),
            ("store", 0x00, 0x81)]


def output_of(prog, res):
    return prog.output(res.regions[prog.out_index])


def test_the_driver_programs_launches_and_reads_back(fake, bitstream, prog):
    be = create_backend("pynq", hw=HW, bitstream=bitstream)
    assert fake.BOARD.overlays == [bitstream]
    res = be.run(prog.data, number=2, regions=[prog.out_index])
    assert np.array_equal(output_of(prog, res), prog.expected)
    assert fake.BOARD.launches == fake.BOARD.completed == 2 and fake.BOARD.violations == []
    # the exact register writes of one launch: the insn address is a fake CMA buffer
    writes = fake.BOARD.writes
    assert len(writes) == 22
    addr = writes[1][2]
    assert writes[:11] == expected_launch(prog.bundle.insn_count, addr) == writes[11:]
    assert addr >= 0x1F00_0000 and addr % 16 == prog.bundle.insn_addr % 16
    assert addr != prog.bundle.insn_addr  # relocated
    info = be.info()
    assert (info["backend"], info["bitstream"], info["hw"], info["clock_mhz"], info["coherent"]) == \
        ("pynq", "1x16_i8w8a32_15_15_18_17.bit", HW.name, 100.0, True)
    assert fake.BOARD.live == {}  # every CMA buffer freed


def test_every_region_is_placed_in_its_own_cma_buffer(fake, bitstream, prog):
    be = create_backend("pynq", hw=HW, bitstream=bitstream)
    res = be.run(prog.data)
    # inputs come back as they went in; relocated instructions differ in the stream region
    for k, (base, data) in enumerate(prog.bundle.regions):
        if k != prog.out_index and not base <= prog.bundle.insn_addr < base + data.size:
            assert np.array_equal(res.regions[k], data)
    assert len(fake.BOARD.dram.regions) == 0


def test_non_coherent_port_flushes_and_invalidates(fake, bitstream, prog):
    fake.reset(coherent=False)
    be = create_backend("pynq", hw=HW, bitstream=bitstream, coherent=False)
    res = be.run(prog.data, regions=[prog.out_index])
    assert np.array_equal(output_of(prog, res), prog.expected)
    n = len(prog.bundle.regions)
    assert fake.BOARD.flushes == n and fake.BOARD.invalidates == 1
    assert be.info()["coherent"] is False


def test_without_the_flush_a_non_coherent_board_computes_garbage(fake, bitstream, prog, monkeypatch):
    fake.reset(coherent=False)
    be = create_backend("pynq", hw=HW, bitstream=bitstream, coherent=False)
    monkeypatch.setattr(D.PynqDevice, "flush", lambda self, buf: None)
    with pytest.raises(BoardHangError):  # the accelerator sees no instructions
        be.run(prog.data, regions=[prog.out_index], timeout_s=0.2)


def test_a_broken_relocation_gives_a_wrong_output(fake, bitstream, prog, monkeypatch):
    import vtatune.board.relocate as R
    orig = R.RelocationPlan.apply

    def off_by_one_wgt_element(self, new_bases):
        # every region but the stream's moved 256 bytes further than its data
        shifted = [b + (0 if k == self.insn_region else 256) for k, b in enumerate(new_bases)]
        res = orig(self, shifted)
        res.insn_addr = new_bases[self.insn_region] + self.insn_offset
        return res

    be = create_backend("pynq", hw=HW, bitstream=bitstream)
    monkeypatch.setattr(R.RelocationPlan, "apply", off_by_one_wgt_element)
    res = be.run(prog.data, regions=[prog.out_index])
    assert not np.array_equal(output_of(prog, res), prog.expected)


def test_an_unrelocated_stream_never_completes(fake, bitstream, prog, monkeypatch):
    import vtatune.board.relocate as R
    orig = R.RelocationPlan.apply

    def unrelocated(self, new_bases):
        res = orig(self, new_bases)
        res.stream = self.words.astype("<u8").tobytes()
        return res

    be = create_backend("pynq", hw=HW, bitstream=bitstream)
    monkeypatch.setattr(R.RelocationPlan, "apply", unrelocated)
    with pytest.raises(BoardHangError):
        be.run(prog.data, timeout_s=0.2)
    assert fake.BOARD.errors  # fsim found the addresses outside every CMA buffer


@pytest.mark.parametrize("breakage", ["no_auto_restart", "fetch_auto_restart", "missing_zero",
                                      "start_before_address"])
def test_a_wrong_register_sequence_is_caught(fake, bitstream, prog, monkeypatch, breakage):
    be = create_backend("pynq", hw=HW, bitstream=bitstream)
    if breakage == "no_auto_restart":
        monkeypatch.setattr(D, "AP_START_AUTO_RESTART", 0x1)
    elif breakage == "fetch_auto_restart":
        monkeypatch.setattr(D, "AP_START", 0x81)
    elif breakage == "missing_zero":
        monkeypatch.setattr(D, "ZEROED", D.ZEROED[:-1])
    else:
        # the original order broken: start written before the stream's address
        orig = D.PynqDevice.launch

        def early_start(self, insn_addr, insn_count, timeout_s):
            self.mmio["fetch"].write(D.CTRL, D.AP_START)
            return orig(self, insn_addr, insn_count, timeout_s)

        monkeypatch.setattr(D.PynqDevice, "launch", early_start)
    with pytest.raises(SequenceError):
        be.run(prog.data)
    assert fake.BOARD.violations and fake.BOARD.completed == 0


def test_a_hang_reprograms_and_the_next_run_works(fake, bitstream, prog):
    be = create_backend("pynq", hw=HW, bitstream=bitstream)
    fake.BOARD.hang = True
    with pytest.raises(BoardHangError) as err:
        be.run(prog.data, timeout_s=0.05)
    assert err.value.code == "hang" and err.value.field == "timeout_s"
    assert fake.BOARD.overlays == [bitstream, bitstream]  # re-programmed, same process
    assert fake.BOARD.live == {}
    res = be.run(prog.data, regions=[prog.out_index])
    assert np.array_equal(output_of(prog, res), prog.expected)


def test_pynq_backend_behind_the_server(fake, bitstream, prog, serve):
    srv = serve("pynq", bitstream=bitstream)
    with BoardClient("127.0.0.1", srv.port) as c:
        assert c.info()["bitstream"] == "1x16_i8w8a32_15_15_18_17.bit"
        fake.BOARD.hang = True
        with pytest.raises(BoardHangError):
            c.run(prog.data, timeout_s=0.05)
        res = c.run(prog.data, number=3, regions=[prog.out_index])
        assert np.array_equal(output_of(prog, res), prog.expected) and len(res.times_s) == 3
        info = c.program()
        assert info["backend"] == "pynq" and len(fake.BOARD.overlays) == 3  # start, hang, program


# ----------------------------------------------------------------------------- bitstreams
@pytest.mark.parametrize("name,dirs", [("4x8_i8w8a32_15_16_16_18.bit", ("pynq", "0.0.2")),
                                       ("1x16_i8w8a32_15_15_18_17.rbf", ("pynq", "0.0.2")),
                                       ("1x16_i8w8a32_15_15_18_17.bit", ("pynq", "0.0.1")),
                                       ("1x16_i8w8a32_15_15_18_17.bit", ("pynq", "0_0_1"))])
def test_a_bitstream_of_another_configuration_is_refused(fake, tmp_path, name, dirs):
    path = tmp_path.joinpath(*dirs, name)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\0")
    with pytest.raises(ConfigurationError) as err:
        create_backend("pynq", hw=HW, bitstream=str(path))
    assert err.value.field == "bitstream"
    assert fake.BOARD.overlays == []  # refused before the board is touched


def test_bitstream_names_follow_the_configuration(fake, tmp_path):
    path = tmp_path / "4x8_i8w8a32_15_16_16_18.bit"
    path.write_bytes(b"\0")
    be = create_backend("pynq", hw="pynq_4x8_i8w8a32_15_16_16_18", bitstream=str(path))
    assert be.info()["hw"] == "pynq_4x8_i8w8a32_15_16_16_18"
    with pytest.raises(ConfigurationError, match="no such file"):
        create_backend("pynq", hw=HW, bitstream=str(tmp_path / "1x16_i8w8a32_15_15_18_17.bit"))
    with pytest.raises(ConfigurationError) as err:
        create_backend("pynq", hw=HW)
    assert err.value.field == "bitstream"
    with pytest.raises(ConfigurationError) as err:
        create_backend("pynq", hw="de10nano_1x16_i8w8a32_15_15_18_17",
                       bitstream=str(tmp_path / "1x16_i8w8a32_15_15_18_17.bit"))
    assert err.value.field == "hw"


def test_without_pynq_the_backend_names_the_extra(monkeypatch, bitstream):
    monkeypatch.setitem(sys.modules, "pynq", None)
    with pytest.raises(MissingDependencyError, match=r"vtatune\[pynq\]"):
        create_backend("pynq", hw=HW, bitstream=bitstream)


def test_the_board_package_imports_without_pynq():
    code = ("import sys; import vtatune.board.driver, vtatune.board.backends, "
            "vtatune.board.server, vtatune.board.client; "
            "bad = [m for m in sys.modules if m == 'pynq' or m.startswith(('tvm', 'sqlalchemy', "
            "'vtatune.compiler', 'vtatune.measure', 'vtatune.task'))]; assert not bad, bad")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
