"""The console home's shortcuts (常用操作) only offer what the signed-in role may open: finance
and risk staff were offered 导入卡密 and 新增商品, operators 审计日志, each a 403 page."""

import re

import pytest

from kamen.roles import FINANCE, OPERATOR, OWNER, RISK
from kamen.tests.factories import StaffFactory


@pytest.mark.django_db
@pytest.mark.parametrize("role", [OWNER, OPERATOR, FINANCE, RISK])
def test_every_shortcut_on_the_console_home_opens_for_that_role(client, role):
    client.force_login(StaffFactory(roles=[role]))

    home = client.get("/admin/").content.decode()
    section = home.split('id="shortcuts-title"', 1)[1].split("</section>", 1)[0]
    shortcuts = re.findall(r'class="shortcut" href="([^"]+)"', section)

    assert shortcuts, "no shortcut at all"
    refused = [url for url in shortcuts if client.get(url, follow=True).status_code >= 400]
    assert refused == []
