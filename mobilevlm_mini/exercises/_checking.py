"""What every checker shares: NotYet, the @checker wrapper, and helpers that read an answer or raise NotYet."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch


class NotYet(Exception):
    """What is still wrong with an answer: a checker prints it and returns False."""


def checker(check: Callable[..., str]) -> Callable[..., bool]:
    """Wrap a check that returns a success message or raises NotYet: print "correct: ..." / "not yet: ...", return True
    / False."""

    @functools.wraps(check)
    def run(*args: Any, **kwargs: Any) -> bool:
        try:
            message = check(*args, **kwargs)
        except NotYet as problem:
            print(f"not yet: {problem}")
            return False
        except NotImplementedError:
            print("not yet: your code still raises NotImplementedError; replace it with your solution")
            return False
        except Exception as error:  # whatever else an unfinished answer triggers, the notebook goes on
            print(f"not yet: checking your answer raised {type(error).__name__}: {error}")
            return False
        print(f"correct: {message}")
        return True

    return run


def _given(value: Any, name: str) -> Any:
    """The value, or NotYet when it is still the starter's None or an empty container."""
    if value is None or (isinstance(value, (dict, list, tuple)) and not value):
        raise NotYet(f"`{name}` is still {'None' if value is None else 'empty'}: replace the starter's placeholder "
                     "with your answer")
    return value


def _tensor(value: Any, name: str) -> torch.Tensor:
    """A detached tensor, or NotYet naming what came instead."""
    _given(value, name)
    if not isinstance(value, torch.Tensor):
        raise NotYet(f"`{name}` should be a torch.Tensor, got {type(value).__name__}")
    return value.detach()


def _number(value: Any, name: str) -> float:
    """A float (from a number or a one-element tensor), or NotYet."""
    _given(value, name)
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):
        raise NotYet(f"`{name}` should be a number, got {type(value).__name__}") from None


def _describe(args: tuple, kwargs: dict) -> str:
    """Short description of a hidden test case: tensor shapes and plain values."""
    show = [f"a tensor of shape {tuple(a.shape)}" if isinstance(a, torch.Tensor) else repr(a) for a in args]
    return ", ".join(show + [f"{k}={v!r}" for k, v in kwargs.items()])


def _call(function: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    """Call the learner's function on a hidden case; NotYet if it is missing, raises or returns None."""
    if not callable(function):
        raise NotYet(f"`{name}` should be a function, got {type(function).__name__}")
    try:
        result = function(*args, **kwargs)
    except NotImplementedError:
        raise NotYet(f"`{name}` still raises NotImplementedError: write its body") from None
    except Exception as error:
        raise NotYet(f"`{name}({_describe(args, kwargs)})` raised {type(error).__name__}: {error}") from None
    if result is None:
        raise NotYet(f"`{name}` returned None: return your result")
    return result


def _ints(value: Any, name: str, count: int = 2) -> tuple[int, ...]:
    """A tuple of `count` whole numbers, or NotYet."""
    _given(value, name)
    try:
        numbers = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise NotYet(f"`{name}` should be {count} whole numbers, e.g. a tuple, got {value!r}") from None
    if len(numbers) != count:
        raise NotYet(f"`{name}` should hold {count} numbers, got {len(numbers)}")
    return numbers


def _close(a: float, b: float, rel: float = 0.01) -> bool:
    return math.isclose(a, b, rel_tol=rel)
