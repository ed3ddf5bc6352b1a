"""AutoTVM-compatible configuration spaces (pure Python): knobs, index arithmetic, sampling,
neighbourhoods, log ``config`` parsing and the knobs of VTA's four templates."""
from .config import ConfigEntity, ConfigSpace
from .indexing import digits_of, index_strides, indices_of, knob_value_table
from .knobs import BaseKnobSpace, OtherOptionSpace, SpaceError, SplitSpace, get_factors
from .templates import CONV_KNOBS, DENSE_KNOBS, packed_axes, space_for

__all__ = ["BaseKnobSpace", "CONV_KNOBS", "ConfigEntity", "ConfigSpace", "DENSE_KNOBS",
           "OtherOptionSpace", "SpaceError", "SplitSpace", "digits_of", "get_factors",
           "index_strides", "indices_of", "knob_value_table", "packed_axes", "space_for"]
