"""One reader of transport options for every broker (transports/options.py)."""

from __future__ import annotations

import pytest

from celeriac.exceptions import ImproperlyConfigured
from celeriac.transports.options import number, option


def test_option_takes_the_first_name_that_is_set() -> None:
    options = {"broker_heartbeat": None, "heartbeat": 30, "ssl": False}
    assert option(options, "broker_heartbeat", "heartbeat", default=120.0) == 30
    assert option(options, "broker_use_ssl", "ssl") is False  # False is set; None is not
    assert option(options, "missing", default=4.0) == 4.0


@pytest.mark.parametrize(
    ("value", "message"),
    [("soon", "visibility_timeout='soon' is not a number"), (-1, "must not be negative")],
)
def test_number_names_the_option_and_the_problem(value: object, message: str) -> None:
    assert number({"visibility_timeout": "7.5"}, "visibility_timeout", 3600.0) == 7.5
    assert number({}, "visibility_timeout", 3600.0) == 3600.0
    with pytest.raises(ImproperlyConfigured, match=message):
        number({"visibility_timeout": value}, "visibility_timeout", 3600.0)
