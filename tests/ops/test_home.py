"""The home page at / (the first address `make run` prints, and the admin's "view site")."""

from __future__ import annotations

import pytest
from django.urls import reverse


@pytest.mark.django_db
def test_home_page_links_to_back_office_docs_and_health(client):
    page = client.get("/")
    assert page.status_code == 200
    html = page.content.decode()
    for name in ("admin:index", "api-docs", "api-schema", "healthz", "readyz"):
        assert f'href="{reverse(name)}"' in html, name


@pytest.mark.django_db
def test_admin_view_site_lands_on_the_home_page(admin_client):
    index = admin_client.get(reverse("admin:index")).content.decode()
    assert 'href="/"' in index
    assert admin_client.get("/").status_code == 200
