"""What every exercise test asserts about a checker's verdict and message."""


def passes(capsys, result: bool) -> str:
    """The checker returned True and printed a "correct" line."""
    out = capsys.readouterr().out
    assert result is True, out
    assert out.startswith("correct: "), out
    return out


def fails(capsys, result: bool, *phrases: str, hidden: tuple[str, ...] = ()) -> str:
    """The checker returned False and printed a "not yet" line containing every phrase and none of `hidden`."""
    out = capsys.readouterr().out
    assert result is False, out
    assert out.startswith("not yet: "), out
    for phrase in phrases:
        assert phrase in out, f"{phrase!r} not in {out!r}"
    for secret in hidden:
        assert secret not in out, f"the message gives away {secret!r}: {out!r}"
    return out


def raises_not_implemented(*args, **kwargs):
    """A starter's function whose body the learner has not written yet."""
    raise NotImplementedError
