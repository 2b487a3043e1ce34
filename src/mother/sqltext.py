"""Reading programmer-written SQL just enough to place a raw query's filter.

A small tokenizer, not a parser: it knows string literals (``'…'``, ``E'…'``,
dollar quotes), quoted identifiers (``"…"``, backticks), comments (``--`` and
``/* … */``) and the nesting of parentheses and brackets, so that a word seen
at the top level of the statement really is a keyword of that statement and
not text of a literal, a comment or a subquery.
"""

from __future__ import annotations

import dataclasses
import re

from .errors import MotherError

#: where a raw query wants its MoFilter's conditions (see :func:`mother.sql.raw`)
MARKER = "{filter}"

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<line>--[^\n]*)
  | (?P<block>/\*)
  | (?P<string>[eE]'(?:[^'\\]|\\.|'')*'|'(?:[^']|'')*')
  | (?P<ident>"(?:[^"]|"")*"|`(?:[^`]|``)*`)
  | (?P<dollar>\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$)
  | (?P<marker>\{filter\})
  | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<open>[(\[])
  | (?P<close>[)\]])
  | (?P<semicolon>;)
  | (?P<unclosed>['"`])
  | (?P<other>.)
""", re.VERBOSE | re.DOTALL)


def shown(sql: str, limit: int = 200) -> str:
    """A statement for an error message: on one line, cut only when very long."""
    text = " ".join(sql.split())
    return repr(text if len(text) <= limit else text[:limit] + "…")


class RawFilterError(MotherError, ValueError):
    """A MoFilter that cannot be added to a raw query as written (the message names the
    query and says why); or raw SQL text that cannot be read (an unclosed literal,
    comment or parenthesis)."""

    def __init__(self, sql: str, reason: str) -> None:
        super().__init__(f"raw query {shown(sql)}: {reason}")
        self.sql = sql
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Token:
    """One token outside comments: its kind, where it is, how deep in parentheses."""

    kind: str
    start: int
    end: int
    depth: int
    text: str

    @property
    def keyword(self) -> str:
        """The word in upper case (empty for anything that is not a bare word)."""
        return self.text.upper() if self.kind == "word" else ""


def tokens(sql: str) -> list[Token]:
    """The tokens of ``sql`` in order, without spaces and comments."""
    out: list[Token] = []
    depth = pos = 0
    while pos < len(sql):
        match = _TOKEN.match(sql, pos)
        assert match is not None  # "other" matches any character
        kind, end = match.lastgroup or "other", match.end()
        if kind == "block":
            end = _block_end(sql, pos)
        elif kind == "dollar":
            close = sql.find(match.group(), end)
            if close < 0:
                raise RawFilterError(sql, f"unclosed dollar-quoted string {match.group()!r} "
                                     f"at character {pos}")
            end = close + len(match.group())
            kind = "string"
        elif kind == "unclosed":
            raise RawFilterError(sql, f"unclosed {sql[pos]} at character {pos}")
        elif kind == "close":
            depth -= 1
            if depth < 0:
                raise RawFilterError(sql, f"unbalanced {sql[pos]!r} at character {pos}")
        if kind not in ("space", "line", "block"):
            out.append(Token(kind, pos, end, depth, sql[pos:end]))
        if kind == "open":
            depth += 1
        pos = end
    if depth:
        raise RawFilterError(sql, f"{depth} unclosed parenthesis or bracket")
    return out


def _block_end(sql: str, start: int) -> int:
    """Where the ``/* … */`` comment opening at ``start`` ends (nested ones count)."""
    depth, pos = 0, start
    while True:
        opening, closing = sql.find("/*", pos), sql.find("*/", pos)
        if closing < 0:
            raise RawFilterError(sql, f"unclosed comment at character {start}")
        if 0 <= opening < closing:
            depth, pos = depth + 1, opening + 2
            continue
        depth, pos = depth - 1, closing + 2
        if depth == 0:
            return pos


#: the words that start a statement (after a WITH, the first one at the top level is its verb)
_VERBS = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE", "VALUES", "TABLE", "MERGE"})
#: the statements a filter is appended to
_FILTERABLE = ("SELECT", "UPDATE", "DELETE")
#: top-level words that start a clause after WHERE: a filter appended after them would
#: land in that clause (or in the last part of a UNION) instead
_AFTER_WHERE = frozenset({"GROUP", "HAVING", "WINDOW", "ORDER", "LIMIT", "OFFSET", "FETCH",
                          "FOR", "UNION", "INTERSECT", "EXCEPT", "RETURNING"})


def add_condition(sql: str, condition: str) -> str:
    """``sql`` with ``condition`` (SQL text) required of the rows it works on.

    Where ``sql`` holds :data:`MARKER` (outside literals and comments), the
    condition, in parentheses, takes its place. Otherwise the statement must be
    one SELECT, UPDATE or DELETE with no clause after its WHERE at the top level
    (``ORDER BY``, ``GROUP BY``, ``LIMIT``, ``UNION``, ``RETURNING``…): the
    condition is appended to its WHERE (whose own conditions are put in
    parentheses, so an ``OR`` there stays apart), or as a new WHERE, before any
    trailing comment and semicolon. Anything else raises :class:`RawFilterError`.
    """
    found = tokens(sql)
    markers = [token for token in found if token.kind == "marker"]
    if len(markers) > 1:
        raise RawFilterError(sql, f"{MARKER} appears {len(markers)} times: write it once")
    if markers:
        return sql[:markers[0].start] + f"({condition})" + sql[markers[0].end:]
    code = found[:-1] if found and found[-1].kind == "semicolon" else found
    if any(token.kind == "semicolon" for token in code):
        raise RawFilterError(sql, "it holds several statements: give the filter to one")
    top = [token for token in code if token.depth == 0 and token.kind == "word"]
    at = 0  # the verb: the first word, or after WITH the first word that starts a statement
    if top and top[0].keyword == "WITH":
        at = next((index for index, token in enumerate(top) if token.keyword in _VERBS),
                  len(top))
    verb = top[at].keyword if at < len(top) else None
    if verb not in _FILTERABLE:
        what = "a statement without any" if verb is None else f"an {verb}" \
            if verb[0] in "AEIOU" else f"a {verb}"
        raise RawFilterError(sql, f"a MoFilter is appended only to a SELECT, UPDATE or DELETE, "
                             f"and this is {what}: write {MARKER} where its conditions go")
    after = top[at + 1:]
    clause = next((token for token in after if token.keyword in _AFTER_WHERE), None)
    if clause is not None:
        raise RawFilterError(sql, f"its {clause.keyword} clause comes after where the filter "
                             f"would be appended: write {MARKER} where its conditions go "
                             f"(WHERE {MARKER}, or AND {MARKER} in a WHERE)")
    end = code[-1].end
    wheres = [index for index, token in enumerate(after) if token.keyword == "WHERE"]
    if not wheres:
        return f"{sql[:end]} WHERE {condition}{sql[end:]}"
    where = after[wheres[-1]]
    if wheres[-1] + 1 < len(after) and after[wheres[-1] + 1].keyword == "CURRENT":
        raise RawFilterError(sql, "a WHERE CURRENT OF takes no other condition")
    return f"{sql[:where.end]} ({sql[where.end:end].strip()}) AND {condition}{sql[end:]}"
