"""Compiler: a workload plus one template configuration -> a VTA program, or the typed
invalid-configuration error of the mechanism that fails."""
from .program import Program, check_config, compile_program
from .reference import reference

__all__ = ["Program", "check_config", "compile_program", "reference"]
