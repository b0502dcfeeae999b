"""tubelet_embed: a kernel = stride Conv3d as one GEMM gives the convolution's values."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ivtools.layers import tubelet_embed


@pytest.mark.parametrize("kernel", [(1, 14, 14), (2, 16, 16), (2, 4, 8)])
@pytest.mark.parametrize("bias", [True, False])
def test_equals_the_strided_convolution(kernel, bias):
    torch.manual_seed(0)
    conv = nn.Conv3d(3, 5, kernel_size=kernel, stride=kernel, bias=bias).double()
    video = torch.randn(2, 3, 5, 33, 35, dtype=torch.float64)  # remainders are dropped, as the conv does
    expected = F.conv3d(video, conv.weight, conv.bias, stride=kernel).permute(0, 2, 3, 4, 1)
    torch.testing.assert_close(tubelet_embed(video, conv), expected, rtol=1e-12, atol=1e-12)


def test_overlapping_or_padded_convolutions_are_refused():
    with pytest.raises(ValueError, match="kernel = stride"):
        tubelet_embed(torch.randn(1, 3, 2, 8, 8), nn.Conv3d(3, 4, kernel_size=2, stride=1))
    with pytest.raises(ValueError, match="kernel = stride"):
        tubelet_embed(torch.randn(1, 3, 2, 8, 8), nn.Conv3d(3, 4, kernel_size=2, stride=2, padding=1))
