import pathlib
import sys

# tuning_synth.py (synthetic spaces and objectives) sits beside the tests.
sys.path.insert(0, str(pathlib.Path(__file__).parent))
