"""The board side of measurement: the program-bundle server that runs on a PYNQ board (or
on fsim/tsim for tests), its wire protocol and the client that talks to it.

This package sits just above ``sim``: the server imports only numpy, the ISA codec, the
bundle reader and the simulators, so it runs on a PYNQ image (numpy < 2, no apache-tvm).
"""
