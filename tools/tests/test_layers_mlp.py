"""The tanh-GELU MLP: same function on the training path and on the fused-epilogue inference path."""

import math

import pytest
import torch
import torch.nn.functional as F

from ivtools.layers import GeluTanhMlp, make_mlp


def reference(mlp, x):
    """fc1 -> tanh-GELU written out -> fc2, in float64."""
    h = x.double() @ mlp.fc1.weight.double().t() + mlp.fc1.bias.double()
    h = 0.5 * h * (1 + torch.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h**3)))
    return h @ mlp.fc2.weight.double().t() + mlp.fc2.bias.double()


def test_fused_flag_builds_the_tanh_mlp_and_unfused_the_exact_one():
    torch.manual_seed(0)
    fused, exact = make_mlp(8, 32, fused=True), make_mlp(8, 32, fused=False)
    exact.load_state_dict(fused.state_dict())
    x = torch.randn(4, 3, 8) * 3
    assert isinstance(fused, GeluTanhMlp) and not isinstance(exact, GeluTanhMlp)
    torch.testing.assert_close(fused(x).double(), reference(fused, x), atol=1e-5, rtol=1e-5)
    # the two GELUs differ by more than the tolerance, so the test above tells them apart
    assert (fused(x) - exact(x)).abs().max() > 1e-4


@pytest.mark.gpu
@pytest.mark.parametrize("autocast", [False, True])
def test_epilogue_path_equals_the_training_path_on_cuda(autocast):
    torch.manual_seed(0)
    mlp = make_mlp(64, 256, fused=True).cuda()
    x = (torch.randn(2, 33, 64) * 3).cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
        trained = mlp(x.requires_grad_())  # needs grad: unfused path
        with torch.no_grad():
            inferred = mlp(x)  # cuBLASLt GELU epilogue
    assert trained.dtype == inferred.dtype
    expected = reference(mlp, x.detach())
    tol = 3e-2 if autocast else 1e-4
    torch.testing.assert_close(inferred.double(), expected, atol=tol, rtol=tol)
    torch.testing.assert_close(inferred, trained.detach(), atol=tol, rtol=tol)
    exact_gelu = F.linear(
        F.gelu(F.linear(x.detach().double(), mlp.fc1.weight.double(), mlp.fc1.bias.double())),
        mlp.fc2.weight.double(),
        mlp.fc2.bias.double(),
    )
    if not autocast:  # in fp32 the epilogue is seen to be the tanh approximation, not erf
        assert (inferred.double() - exact_gelu).abs().max() > 10 * (inferred.double() - expected).abs().max()
