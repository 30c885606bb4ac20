"""The form made from a parameter spec, and the API's problems put back beside their fields (no browser)."""

from __future__ import annotations

from pixsim_gateway.console import params

SPEC = {
    "parameters": [
        {"name": "prompt", "type": "string", "required": True, "max_length": 2000, "group": "core"},
        {"name": "duration", "type": "integer", "min": 1, "max": 20, "default": 5},
        {"name": "seconds", "type": "integer", "enum": [4, 8, 12], "default": 4},
        {"name": "latency", "type": "number", "min": 0},
        {"name": "image_url", "type": "string", "required": True, "group": "core"},
        {"name": "extra_image_urls", "type": "array", "default": []},
        {"name": "loop", "type": "boolean"},
    ]
}


def test_widgets_follow_the_spec():
    fields = {f.name: f for f in params.fields_of(SPEC)}
    assert {n: f.widget for n, f in fields.items()} == {
        "prompt": "textarea",
        "duration": "number",
        "seconds": "select",
        "latency": "number",
        "image_url": "media",
        "extra_image_urls": "media",
        "loop": "boolean",
    }
    assert fields["duration"].hint == "1 to 20; default 5"
    assert fields["seconds"].options == [("", "(default: 4)"), ("4", "4"), ("8", "8"), ("12", "12")]
    assert [name for name, _ in params.groups_of(list(fields.values()))] == ["core", "options"]


def test_answers_become_typed_params_and_uploads_win():
    fields = params.fields_of(SPEC)
    form = {
        "prompt": " a fox ",
        "duration": "3",
        "seconds": "8",
        "latency": "0.5",
        "image_url": "https://x/a.png",
        "extra_image_urls": "https://x/b.png\n\nhttps://x/c.png",
        "loop": "true",
    }
    got = params.to_params(fields, form, {"image_url": ["asset://abc"]})
    assert got == {
        "prompt": "a fox",
        "duration": 3,
        "seconds": 8,
        "latency": 0.5,
        "image_url": "asset://abc",
        "extra_image_urls": ["https://x/b.png", "https://x/c.png"],
        "loop": True,
    }
    assert not any(f.error for f in fields)


def test_a_value_not_of_its_type_is_the_fields_own_error():
    fields = params.fields_of(SPEC)
    got = params.to_params(fields, {"prompt": "x", "duration": "three", "latency": ""}, {})
    assert got == {"prompt": "x"}
    assert {f.name: f.error for f in fields if f.error} == {"duration": "must be a whole number"}


def test_api_problems_land_beside_the_fields_they_name():
    fields = params.fields_of(SPEC)
    loose = params.place_problems(
        fields,
        "parameter 'duration' must be <= 20, got 99; image_url: no asset 'q' "
        "of user 'alice'; unknown parameter 'colour' (allowed: ...)",
    )
    errors = {f.name: f.error for f in fields if f.error}
    assert errors == {
        "duration": "parameter 'duration' must be <= 20, got 99",
        "image_url": "image_url: no asset 'q' of user 'alice'",
    }
    assert loose == ["unknown parameter 'colour' (allowed: ...)"]
