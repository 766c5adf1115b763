"""Errors are problems (RFC 9457) with the fields that were wrong; the rate limit is per token."""

from __future__ import annotations

from django.test import Client, override_settings

from tests.api.conftest import Api


def test_validation_errors_name_each_field(api_world, as_alice):
    response = as_alice.post(f"/conversations/{api_world.conversation.pk}/messages", {"type": "fax", "text": ""})
    assert response.status_code == 422
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422
    assert problem["type"].endswith("/validation")
    assert {e["field"] for e in problem["errors"]} == {"body.type", "body.text"}


def test_a_body_that_is_not_json_is_a_400_problem(api_world, as_alice):
    response = as_alice.post(f"/conversations/{api_world.conversation.pk}/messages", "{not json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"


def test_an_unknown_id_and_a_huge_one_are_404s_not_500s(api_world, as_alice):
    assert as_alice.get("/conversations/999999").status_code == 404
    assert as_alice.get(f"/conversations/{2**70}").status_code in {404, 422}
    assert as_alice.get("/customers/0").status_code == 404


@override_settings(API_RATE_LIMIT="3/60")
def test_past_the_rate_limit_a_token_gets_429_with_retry_after_and_others_do_not(api_world, as_alice, as_bob):
    statuses = [as_alice.get("/me").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = as_alice.get("/me")
    assert refused["Content-Type"] == "application/problem+json"
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert as_bob.get("/me").status_code == 200


def test_the_description_says_errors_are_problems(api_world):
    schema = Client().get("/api/v1/openapi.json").json()
    answers = schema["paths"]["/api/v1/conversations/{conversation_id}"]["get"]["responses"]
    assert "application/problem+json" in answers["404"]["content"]
    assert "application/json" in answers["200"]["content"]
    assert schema["components"]["securitySchemes"]["BearerToken"]["scheme"] == "bearer"


def test_the_docs_page_is_vendored_swagger_ui_under_the_policy(api_world):
    response = Client().get("/api/v1/docs/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in page
    assert "/static/api-docs.js" in page
    assert "<script>" not in page
    assert "style=" not in page
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert "unpkg" not in page
    assert "cdn" not in page.lower()


def test_a_session_is_not_a_token(api_world):
    browser = Client()
    browser.force_login(api_world.alice)
    assert browser.get("/api/v1/conversations").status_code == 401
    assert Api(None).get("/me").status_code == 401
