"""`data_flow`: data classes are matched whatever their case or surrounding spaces, so
"Credentials" to a third party fails like "credentials"."""

import pytest

from releasegate.checks.rules import check_data_flow


def flow(*classes: str) -> dict:
    return {
        "flows": [
            {
                "source": "agent",
                "destination": "vendor",
                "data_classes": list(classes),
                "third_party": True,
                "customer_data": "synthetic",
            }
        ]
    }


@pytest.mark.parametrize("name", ["credentials", "Credentials", "CREDENTIALS", " credentials "])
def test_credentials_to_a_third_party_fail_whatever_their_case(name):
    outcome = check_data_flow(flow("pii", name))
    assert outcome.status == "failed"
    assert outcome.details["problems"][0]["rule"] == "credentials_to_third_party"


def test_other_classes_pass():
    assert check_data_flow(flow("pii", "telemetry")).status == "passed"
