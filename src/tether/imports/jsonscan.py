"""Cutting JSON text into its values without parsing them.

A JSON import is cut into one byte string a value (an array's items, or the values of a file
that holds objects one after another), and each is then parsed on its own
(``catalog.manifests.loads``). So a value that does not parse (``NaN``, ``1e400``, a byte that
is not UTF-8, a missing colon) costs only its own row, and reading goes on with the next one.
Only a break in the structure itself (a bracket that does not match, a string not closed on
its line, the file ending inside a value) stops the reading; everything before it is kept.

The cutting looks only at brackets, commas and strings, which are ASCII, so it works on bytes
that are not UTF-8 and at any depth. Values nested up to ``FAST_DEPTH`` levels are matched by
one regular expression (in C); deeper ones, broken ones and ones that cross the end of the
block read so far go bracket by bracket.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

BLOCK = 1 << 20
MAX_VALUE_BYTES = 64 * 1024 * 1024  # as large as a CSV field may be
FAST_DEPTH = 8
WHITESPACE = b" \t\r\n"
COMMA, CLOSE_ARRAY = ord(","), ord("]")

# A JSON string ends on its own line (it holds no raw line break).
_STRING = rb'"(?:[^"\\\n]++|\\[^\n])*+"'


def _nested(depth: int) -> bytes:
    """What may stand inside brackets, nested up to ``depth`` more levels."""
    inner = rb'[^"\[\]{}]++|' + _STRING
    if depth:
        lower = _nested(depth - 1)
        inner += rb"|\[" + lower + rb"\]|\{" + lower + rb"\}"
    return rb"(?:" + inner + rb")*+"


_LOWER = _nested(FAST_DEPTH - 1)
_CONTAINERS = rb"\[" + _LOWER + rb"\]|\{" + _LOWER + rb"\}"
# An array item: everything up to the comma or ] that ends it.
_ITEM = re.compile(rb'(?:[^"\[\]{},]++|' + _STRING + rb"|" + _CONTAINERS + rb")*+")
_CONTAINER = re.compile(_CONTAINERS)
# A value that is not a container: a string, or a bare word (a number, true, null ...).
_SCALAR = re.compile(_STRING + rb'|[^\s\[\]{},"]++')
_TOKEN = re.compile(_STRING + rb'|["\[\]{},]')
_CLOSER = {ord("["): ord("]"), ord("{"): ord("}")}


class Break(Exception):
    """The structure of the text is broken at ``line``: nothing after it can be cut."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass(slots=True)
class Value:
    line: int  # where the value starts (1-based)
    text: bytes


class _Buffer:
    """A growing window on the stream, which knows the line of every position in it."""

    def __init__(self, f: IO[bytes], start: bytes = b"") -> None:
        self.f = f
        self.data = start
        self.eof = False
        self._mark, self._mark_line = 0, 1  # a position and its line

    def more(self, size: int = BLOCK) -> bool:
        if self.eof:
            return False
        block = self.f.read(size)
        if not block:
            self.eof = True
            return False
        self.data += block
        return True

    def drop(self, pos: int) -> None:
        """Forget what comes before ``pos``."""
        self._mark_line = self.line_of(pos)
        self._mark = 0
        self.data = self.data[pos:]

    def line_of(self, pos: int) -> int:
        if pos < self._mark:
            return self._mark_line - self.data.count(b"\n", pos, self._mark)
        self._mark_line += self.data.count(b"\n", self._mark, pos)
        self._mark = pos
        return self._mark_line

    def skip_space(self, pos: int) -> int:
        """The first position from ``pos`` on that is not whitespace (len(data) at the end)."""
        while True:
            data = self.data
            while pos < len(data) and data[pos] in WHITESPACE:
                pos += 1
            if pos < len(data) or not self.more():
                return pos

    def grow(self, pos: int) -> bool:
        """Read more of the value that starts at ``pos``; False at the end of the stream."""
        if len(self.data) - pos > MAX_VALUE_BYTES:
            raise Break(
                f"a value is longer than {MAX_VALUE_BYTES // (1024 * 1024)} MiB",
                self.line_of(pos),
            )
        return self.more(max(BLOCK, len(self.data) - pos))


def array_items(f: IO[bytes], head: bytes = b"") -> Iterator[Value]:
    """The items of the JSON array the stream holds (``head``: bytes of it read already).
    An empty item (``[1,,2]``) comes out with empty text; a trailing comma is let pass.
    Raises ``Break`` where the structure breaks."""
    buf = _Buffer(f, head)
    pos = buf.skip_space(0)
    if pos >= len(buf.data) or buf.data[pos] != ord("["):
        raise Break("the file does not start with [", buf.line_of(pos))
    pos += 1
    while True:
        end, closer = _item_end(buf, pos)
        raw = buf.data[pos:end]
        text = raw.strip(WHITESPACE)
        if text or closer == COMMA:
            lead = len(raw) - len(raw.lstrip(WHITESPACE))
            yield Value(buf.line_of(pos + lead), text)
        pos = end + 1
        if closer == CLOSE_ARRAY:
            break
        if pos > BLOCK:
            buf.drop(pos)
            pos = 0
    pos = buf.skip_space(pos)
    if pos < len(buf.data):
        raise Break("more follows the array's closing ]", buf.line_of(pos))


def values(f: IO[bytes], head: bytes = b"") -> Iterator[Value]:
    """The JSON values the stream holds one after another: one object, or objects written
    one after another (on a line each or not, commas between them or not). Raises ``Break``
    where the structure breaks."""
    buf = _Buffer(f, head)
    pos = 0
    while True:
        pos = buf.skip_space(pos)
        if pos < len(buf.data) and buf.data[pos] == COMMA:
            pos = buf.skip_space(pos + 1)
        if pos >= len(buf.data):
            return
        end = _value_end(buf, pos)
        yield Value(buf.line_of(pos), buf.data[pos:end])
        pos = end
        if pos > BLOCK:
            buf.drop(pos)
            pos = 0


def first_value(f: IO[bytes]) -> tuple[bytes, int, int] | None:
    """The stream's first value as (the bytes read, where the value starts and ends in
    them); None when the stream holds only whitespace or the value's structure breaks."""
    buf = _Buffer(f)
    pos = buf.skip_space(0)
    if pos >= len(buf.data):
        return None
    try:
        end = _value_end(buf, pos)
    except Break:
        return None
    return buf.data, pos, end


def _item_end(buf: _Buffer, pos: int) -> tuple[int, int]:
    """Where the array item at ``pos`` ends, and the comma or ] that ends it."""
    match = _ITEM.match(buf.data, pos)
    end = match.end() if match else pos
    if end < len(buf.data) and buf.data[end] in b",]":
        return end, buf.data[end]
    return _bracket_by_bracket(buf, pos, item=True)


def _value_end(buf: _Buffer, pos: int) -> int:
    """Where the value at ``pos`` (not whitespace) ends."""
    first = buf.data[pos]
    if first in b"[{":
        match = _CONTAINER.match(buf.data, pos)
        return match.end() if match else _bracket_by_bracket(buf, pos, item=False)[0]
    if first in b"]},":
        raise Break(f"unexpected {chr(first)!r}", buf.line_of(pos))
    while True:
        match = _SCALAR.match(buf.data, pos)
        if match and (match.end() < len(buf.data) or buf.eof):
            return match.end()
        if match is None and buf.data.find(b"\n", pos) >= 0:
            raise Break("a string is not closed on its line", buf.line_of(pos))
        if not buf.grow(pos):
            if match:
                return match.end()
            raise Break("a string is not closed", buf.line_of(pos))


def _bracket_by_bracket(buf: _Buffer, pos: int, item: bool) -> tuple[int, int]:
    """The end of an array item (``item``: up to its comma or ]) or of a container value (past
    its closing bracket), bracket by bracket, reading on as needed."""
    while True:
        stack: list[int] = []
        for match in _TOKEN.finditer(buf.data, pos):
            token = match.group()
            byte = token[0]
            if len(token) > 1:  # a whole string
                continue
            if byte == ord('"'):  # a string not closed: on its line, or in what is read
                if buf.data.find(b"\n", match.start()) >= 0 or buf.eof:
                    raise Break("a string is not closed on its line", buf.line_of(match.start()))
                break
            if byte in _CLOSER:
                stack.append(_CLOSER[byte])
            elif stack and stack[-1] == byte:
                stack.pop()
                if not stack and not item:
                    return match.end(), 0
            elif item and not stack and byte in b",]":
                return match.start(), byte
            elif byte != COMMA:
                raise Break(f"unexpected {chr(byte)!r}", buf.line_of(match.start()))
        if not buf.grow(pos):
            start = len(buf.data) - len(buf.data[pos:].lstrip(WHITESPACE))
            raise Break(
                "the file ends inside " + ("the array (no closing ])" if item else "a value"),
                buf.line_of(start),
            )
