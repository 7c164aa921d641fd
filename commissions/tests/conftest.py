import pytest


@pytest.fixture(autouse=True)
def real_name_verified(request, monkeypatch):
    """Withdrawals need a verified real name (riskcontrol); these tests are about money, so
    every distributor counts as verified unless a test asks for the real check with
    ``@pytest.mark.real_name_check``."""
    if request.node.get_closest_marker("real_name_check"):
        return
    import riskcontrol.selectors

    monkeypatch.setattr(riskcontrol.selectors, "is_real_name_verified", lambda *, distributor: True)
