"""E2 on hand-made grids with a known validity pattern."""
import numpy as np
import pytest

from vtatune.errors import ConfigurationError
from vtatune.space import space_for
from vtatune.study import clustering, grid_edges
from vtatune.task import VtaTask

# A 3 x 3 grid; knob 0 is the least significant digit: index = d0 + 3 * d1.
#
#   d1 \ d0   0  1  2
#     0       V  V  .        indices 0 1 2
#     1       .  .  .        indices 3 4 5
#     2       V  .  V        indices 6 7 8
DIMS = [3, 3]
VALID = np.zeros(9, dtype=bool)
VALID[[0, 1, 6, 8]] = True


def _edge_set(dims, mode):
    s, d, _ = grid_edges(dims, mode)
    return {(int(a), int(b)) for a, b in zip(s, d)}


def test_adjacent_edges_of_the_hand_grid():
    assert _edge_set(DIMS, "adjacent") == {
        (0, 1), (1, 2), (3, 4), (4, 5), (6, 7), (7, 8),      # knob 0
        (0, 3), (3, 6), (1, 4), (4, 7), (2, 5), (5, 8)}      # knob 1


def test_hand_grid_adjacent_graph():
    r = clustering(VALID, DIMS, ["a", "b"], mode="adjacent", shuffles=0)
    assert r["edges"] == 12
    assert r["base_rate"] == pytest.approx(4 / 9)
    assert r["random_expectation"] == pytest.approx(3 / 8)
    # valid-valid edges: (0,1); valid-invalid: (0,3) (1,2) (1,4) (6,7) (3,6) (7,8) (5,8)
    assert (r["valid_valid_edges"], r["valid_other_edges"]) == (1, 7)
    assert r["p_neighbour_valid"] == pytest.approx(2 / 9)
    assert r["lift"] == pytest.approx((2 / 9) / (4 / 9))
    assert r["components"] == 3
    assert r["component_sizes"] == [2, 1, 1]
    assert r["isolated"] == 2
    assert r["largest_component"] == 2
    by_knob = {k["knob"]: k for k in r["per_knob"]}
    # knob a: vv (0,1); vi (1,2) (6,7) (7,8)  -> 2 / (2 + 3)
    assert by_knob["a"]["p_neighbour_valid"] == pytest.approx(2 / 5)
    # knob b: no vv edge; vi (0,3) (3,6) (5,8)
    assert by_knob["b"]["p_neighbour_valid"] == 0.0


def test_hand_grid_any_other_candidate_graph():
    r = clustering(VALID, DIMS, mode="any", shuffles=0)
    assert r["edges"] == 18
    # vv: (0,1) (6,8) (0,6); vi: node 0: 2, node 1: 3, node 6: 2, node 8: 3
    assert (r["valid_valid_edges"], r["valid_other_edges"]) == (3, 10)
    assert r["p_neighbour_valid"] == pytest.approx(6 / 16)
    assert r["components"] == 1
    assert r["component_sizes"] == [4]


def test_single_candidate_knob_has_no_edges_and_shuffles_are_a_null_model():
    dims = [1, 4, 2]
    valid = np.ones(8, dtype=bool)
    r = clustering(valid, dims, ["one", "x", "y"], shuffles=5)
    assert [k["knob"] for k in r["per_knob"]] == ["x", "y"]
    assert r["p_neighbour_valid"] == 1.0 and r["components"] == 1
    assert r["shuffled"] == {"runs": 5, "p_neighbour_valid": 1.0, "components": 1.0,
                             "example_sizes": [8]}
    none = clustering(np.zeros(8, dtype=bool), dims, shuffles=2)
    assert none["components"] == 0 and np.isnan(none["p_neighbour_valid"])


def test_any_mode_equals_config_space_neighbours():
    space = space_for(VtaTask.create("conv2d:1,8,8,32,32,3,1,1").workload,
                      VtaTask.create("conv2d:1,8,8,32,32,3,1,1").hw)
    edges = _edge_set(space.dims, "any")
    from_space = {(min(i, j), max(i, j)) for i in range(space.size) for j in space.neighbours(i)}
    assert edges == from_space
    adjacent = _edge_set(space.dims, "adjacent")
    # adjacent edges: per knob, size / d * (d - 1) of them
    assert len(adjacent) == sum(space.size // d * (d - 1) for d in space.dims)
    assert adjacent < edges


def test_bad_inputs_name_their_field():
    with pytest.raises(ConfigurationError) as e:
        grid_edges([2, 2], "diagonal")
    assert e.value.field == "mode"
    with pytest.raises(ConfigurationError) as e:
        clustering(np.ones(5, dtype=bool), [2, 2])
    assert e.value.field == "valid"
