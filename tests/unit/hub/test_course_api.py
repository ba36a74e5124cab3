"""The course API's body parsing: every bad definition is a 400 that names the field."""

import pytest
from tornado import web

from spawners.hub.course_api import ADMIN_FIELDS, parse_course

from ..site.test_course_sections import COURSE


@pytest.mark.parametrize(
    ("body", "starts"),
    [
        ({**COURSE, "name": "a b"}, "name: 'a b' has unsafe characters"),
        ({**COURSE, "ends_at": COURSE["starts_at"]}, "ends_at: "),
        ({**COURSE, "members": "demo26"}, "members: "),
        ({**COURSE, "title": ""}, "title: "),
        ({k: v for k, v in COURSE.items() if k != "profile"}, "profile: Field required"),
        (["not", "an", "object"], "body: "),
    ],
)
def test_bad_bodies_are_400s_that_name_the_field(body, starts):
    with pytest.raises(web.HTTPError) as caught:
        parse_course(body)
    assert caught.value.status_code == 400
    assert caught.value.log_message.startswith(starts), caught.value.log_message


def test_instructors_cannot_change_who_is_in_or_what_runs():
    assert {"members", "group", "profile", "reservation", "material"} <= ADMIN_FIELDS
    assert not {"title", "starts_at", "ends_at", "prestart_minutes"} & ADMIN_FIELDS
