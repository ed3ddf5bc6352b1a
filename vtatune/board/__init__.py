"""The board side of measurement: the program-bundle server that runs on a PYNQ board (or
on fsim/tsim for tests), its wire protocol and the client that talks to it.

This package sits just above ``sim``: the server imports only numpy, the ISA codec, the
bundle reader and the simulators, so it runs on a PYNQ image (numpy < 2, no apache-tvm).

* ``protocol``: frames (JSON header + payloads, size limits), HMAC-SHA256 authentication,
  error codes;
* ``relocate``: checks every DMA range of a bundle's stream and moves it to new buffers;
* ``driver``: the shared run sequence and the PYNQ device (``pynq`` imported lazily);
* ``backends``: pynq, fsim and tsim behind one interface;
* ``server`` / ``client``: ``vtatune board serve`` and ``BoardClient`` (docs/board.md).
"""
