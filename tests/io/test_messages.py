"""``one_line``: the single formatter of every command's ``error: ...`` line."""

from __future__ import annotations

import errno

from adain_jax.io.messages import one_line


def test_os_errors_name_the_file_and_the_reason():
    e = FileNotFoundError(errno.ENOENT, "No such file or directory", "in/photo.jpg")
    assert one_line(e) == "in/photo.jpg: No such file or directory"


def test_multi_line_text_becomes_one_line_and_is_cut_at_the_limit():
    e = ValueError("first line\n  second\tline\n")
    assert one_line(e) == "first line second line"
    assert one_line(e, 10) == "first line"
    assert one_line("a\nb") == "a b"


def test_an_empty_message_gives_the_type_name():
    assert one_line(KeyboardInterrupt()) == "KeyboardInterrupt"
