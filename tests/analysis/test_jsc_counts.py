"""Golden totals of the registered JSC models (DESIGN §3 layer lists), both conventions, B = 1 and 256.

Per sample, with Linear(i, o): MACs i·o, bias adds o; BN(n): 4n flops; ReLU(n): n flops.
netcarve: flops = 2·MACs + bias + elementwise; bitops (float) = MACs·32·32 + (bias + elementwise)·32;
backward = 2·(dgrad + wgrad) + bias-grad adds + elementwise. Every JSC model starts with BN, whose affine
parameters need a gradient, so every Linear's input needs one too: dgrad = wgrad = MACs.
mase: flops = MACs + elementwise, bitops = 32·flops, backward = 2·MACs + elementwise.

jsc-tiny  BN16 ReLU L(16,5) ReLU
  MACs 80; bias 5; elementwise 64+16+5 = 85; params 32+85 = 117
  flops 160+5+85 = 250; bitops 81920+160+2720 = 84800; backward 320+5+85 = 410
  mase: flops 165, bitops 5280, backward 245
jsc-toy  BN16 ReLU L(16,8) BN8 ReLU L(8,8) BN8 ReLU L(8,5) BN5 ReLU
  MACs 128+64+40 = 232; bias 8+8+5 = 21; elementwise 64+16+32+8+32+8+20+5 = 185
  params 32+136+16+72+16+45+10 = 327
  flops 464+21+185 = 670; bitops 237568+672+5920 = 244160; backward 928+21+185 = 1134
  mase: flops 417, bitops 13344, backward 649
jsc-three-linear-layers  BN16 ReLU L(16,16) ReLU L(16,16) ReLU L(16,5) ReLU
  MACs 256+256+80 = 592; bias 37; elementwise 64+16+16+16+5 = 117; params 32+272+272+85 = 661
  flops 1184+37+117 = 1338; bitops 606208+1184+3744 = 611136; backward 2368+37+117 = 2522
  mase: flops 709, bitops 22688, backward 1301
jsc-s  BN16 ReLU L(16,64) BN64 ReLU L(64,32) ReLU L(32,32) ReLU L(32,32) ReLU L(32,5) BN5 ReLU
  MACs 1024+2048+1024+1024+160 = 5280; bias 64+32+32+32+5 = 165
  elementwise 64+16+256+64+32+32+32+20+5 = 521; params 32+1088+128+2080+1056+1056+165+10 = 5615
  flops 10560+165+521 = 11246; bitops 5406720+5280+16672 = 5428672; backward 21120+165+521 = 21806
  mase: flops 5801, bitops 185632, backward 11081
At B = 256 every count is 256 × the per-sample one; params and model_size (= 4·params) do not change.
"""

from __future__ import annotations

import pytest

from netcarve import analyze
from netcarve.data.base import DatasetInfo
from netcarve.models import create_model

JSC = DatasetInfo("jsc", 16, 5, ("g", "q", "w", "z", "t"))

#: model → (params, MACs, netcarve (flops, bitops, backward), mase (flops, bitops, backward)), per sample
GOLDEN = {
    "jsc-tiny": (117, 80, (250, 84800, 410), (165, 5280, 245)),
    "jsc-toy": (327, 232, (670, 244160, 1134), (417, 13344, 649)),
    "jsc-three-linear-layers": (661, 592, (1338, 611136, 2522), (709, 22688, 1301)),
    "jsc-s": (5615, 5280, (11246, 5428672, 21806), (5801, 185632, 11081)),
}


@pytest.mark.parametrize("batch", [1, 256])
@pytest.mark.parametrize("convention", ["netcarve", "mase"])
@pytest.mark.parametrize("name", list(GOLDEN))
def test_jsc_totals(name: str, convention: str, batch: int) -> None:
    params, macs, netcarve, mase = GOLDEN[name]
    flops, bitops, backward = netcarve if convention == "netcarve" else mase
    total = analyze(create_model(name, JSC), (batch, 16), convention=convention).total  # type: ignore[arg-type]
    assert total.params == params
    assert total.size_bits == 32 * params
    assert total.model_size == 4 * params
    assert total.average_bitwidth == 32.0
    assert total.memory_density == 1.0
    assert total.macs == batch * macs
    assert total.backward_dgrad_macs == total.backward_wgrad_macs == batch * macs
    assert (total.flops, total.bitops, total.backward_flops) == (batch * flops, batch * bitops, batch * backward)


def test_mase_convention_reproduces_the_seed_lab_report() -> None:
    """The lab report (jsc-tiny, batch 8): computations BN 4·128 = 512, ReLU 128, Linear 80·8 = 640,
    ReLU 40 → 1320; bitops 32× each (16384, 4096, 20480, 1280) → 42240; backward BN 512, ReLU 128,
    Linear 2·640 = 1280, ReLU 40; model size 117 params × 4 bytes = 468."""
    report = analyze(create_model("jsc-tiny", JSC), (8, 16), convention="mase")
    assert [r.flops for r in report.layers] == [512, 128, 640, 40]
    assert [r.bitops for r in report.layers] == [16384, 4096, 20480, 1280]
    assert [r.backward_flops for r in report.layers] == [512, 128, 1280, 40]
    assert (report.total.flops, report.total.bitops, report.total.model_size) == (1320, 42240, 468)


def test_jsc_tiny_layers_and_storage() -> None:
    """jsc-tiny at B = 1: BN16 holds 32 params (γ, β) and 33 buffer elements (running mean 16, var 16,
    num_batches_tracked 1 of int64): buffer_bits 32·32 + 64 = 1088, outside size_bits. Linear 16·5+5 = 85
    params = 2720 bits. Output bytes 16·4, 16·4, 5·4, 5·4."""
    report = analyze(create_model("jsc-tiny", JSC), (1, 16))
    bn, _, linear, _ = report.layers
    assert (bn.params, bn.buffers, bn.size_bits, bn.buffer_bits) == (32, 33, 1024, 1088)
    assert (linear.params, linear.size_bits, linear.macs, linear.flops) == (85, 2720, 80, 165)
    assert [r.output_bytes for r in report.layers] == [64, 64, 20, 20]
    assert report.total.buffer_bits == 1088
    assert report.uncounted == {}
