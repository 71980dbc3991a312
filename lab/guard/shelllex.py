"""A small shell lexer for lab/guard/shellscan.py: words (quotes removed), operators, redirections,
$(…)/backtick substitutions and heredoc bodies. Standard library only: it runs inside the agent hook.
"""

from __future__ import annotations

import re


class Unparseable(Exception):
    """Unbalanced quotes, substitutions or a redirection without a target."""


class Tok:
    """kind: "word" | "op" | "redir"; text: a word's value without quotes, an operator (";" "&&" "|" "("), or a
    redirection with its fd ("2>"); body: for a heredoc's delimiter word, the heredoc's text."""

    __slots__ = ("kind", "text", "body")

    def __init__(self, kind: str, text: str, body: str | None = None):
        self.kind, self.text, self.body = kind, text, body


_OPS = sorted("&& || ;; |& &>> &> <<< <<- << >> >| <> >& <& ; & | ( ) > <".split(), key=len, reverse=True)
_BREAK = frozenset(" \t\n;&|()<>")
MAX_DEPTH = 8  # nested `bash -c "eval '…'"` levels; deeper is treated as unparseable (fail closed)


def lex(s: str, i: int, subs: list[list[Tok]], close: bool = False) -> tuple[list[Tok], int]:
    """Tokens of `s` from `i`; with `close`, up to the `)` ending a `$(`. Command substitutions go to `subs`."""
    toks: list[Tok] = []
    heredocs: list[tuple[Tok, bool]] = []
    depth, fd = 0, ""
    while i < len(s):
        c = s[i]
        if c in " \t" or s.startswith("\\\n", i):
            i += 1 if c != "\\" else 2
        elif c == "\n":
            toks.append(Tok("op", ";"))
            i += 1
            for tok, strip in heredocs:  # heredoc bodies start on the line after their `<<`
                i = _heredoc(s, i, tok, strip)
            heredocs = []
        elif c == "#":
            i = s.find("\n", i) % (len(s) + 1)  # to the newline, or the end
        elif c == ")" and close and depth == 0:
            return toks, i + 1
        elif c in "<>" and s.startswith("(", i + 1):  # process substitution: a pipe, never a file
            j = _expansion(s, i + 1, subs)
            toks.append(Tok("word", s[i:j]))
            i = j
        elif c in _BREAK:
            op = next(o for o in _OPS if s.startswith(o, i))
            i += len(op)
            if "<" in op or ">" in op:
                toks.append(Tok("redir", fd + op))
                fd = ""
            else:
                depth += (op == "(") - (op == ")")
                toks.append(Tok("op", op))
        else:
            tok, j = _word(s, i, subs)
            if s[i:j].isdigit() and s[j:j + 1] in ("<", ">"):  # `2>err.log`: a file descriptor, not a word
                fd = s[i:j]
            else:
                if toks and toks[-1].kind == "redir" and toks[-1].text.lstrip("0123456789") in ("<<", "<<-"):
                    heredocs.append((tok, toks[-1].text.endswith("-")))
                toks.append(tok)
            i = j
    if close:
        raise Unparseable("unterminated $(")
    return toks, i


def _word(s: str, i: int, subs: list[list[Tok]]) -> tuple[Tok, int]:
    out = []
    while i < len(s) and s[i] not in _BREAK:
        c = s[i]
        if c == "\\":
            out.append(s[i + 1:i + 2].replace("\n", ""))
            i += 2
        elif c == "'" or s.startswith("$'", i):
            i += c == "$"
            j = i + 1
            while j < len(s) and s[j] != "'":
                j += 2 if s[j] == "\\" and c == "$" else 1  # only $'…' knows backslash escapes
            if j >= len(s):
                raise Unparseable("unbalanced '")
            out.append(s[i + 1:j])
            i = j + 1
        elif c == '"':
            text, i = _dquote(s, i + 1, subs)
            out.append(text)
        elif c == "`" or s.startswith(("$(", "${"), i):
            j = _expansion(s, i + (c == "$"), subs)
            out.append(s[i:j])
            i = j
        else:
            out.append(c)
            i += 1
    return Tok("word", "".join(out)), i


def _dquote(s: str, i: int, subs: list[list[Tok]]) -> tuple[str, int]:
    out = []
    while i < len(s):
        c = s[i]
        if c == '"':
            return "".join(out), i + 1
        if c == "\\" and s[i + 1:i + 2] in ('"', "\\", "$", "`", "\n"):
            out.append(s[i + 1].replace("\n", ""))
            i += 2
        elif c == "`" or s.startswith(("$(", "${"), i):
            j = _expansion(s, i + (c == "$"), subs)
            out.append(s[i:j])
            i = j
        else:
            out.append(c)
            i += 1
    raise Unparseable('unbalanced "')


def _expansion(s: str, i: int, subs: list[list[Tok]]) -> int:
    """End of the `(…)`, `{…}` or backtick expansion opening at `i`; command substitutions' tokens go to `subs`."""
    if s[i] == "{":
        depth = 0
        for j in range(i, len(s)):
            depth += {"{": 1, "}": -1}.get(s[j], 0)
            if depth == 0:
                return j + 1
        raise Unparseable("unbalanced ${")
    if s[i] == "`":
        j = i + 1
        while j < len(s) and s[j] != "`":
            j += 2 if s[j] == "\\" else 1
        if j >= len(s):
            raise Unparseable("unbalanced `")
        subs.append(lex(re.sub(r"\\([`$\\])", r"\1", s[i + 1:j]), 0, subs)[0])
        return j + 1
    toks, j = lex(s, i + 1, subs, close=True)
    if not s.startswith("((", i):  # $((…)) is arithmetic: its `>` is a comparison
        subs.append(toks)
    return j


def _heredoc(s: str, i: int, tok: Tok, strip: bool) -> int:
    """Store the heredoc starting at `i` in `tok.body`; return where the command text resumes."""
    start = i
    while i < len(s):
        end = s.find("\n", i) % (len(s) + 1)
        if (s[i:end].lstrip("\t") if strip else s[i:end]) == tok.text:
            tok.body = s[start:i]
            return end + 1
        i = end + 1
    tok.body = s[start:]  # bash reads to the end when the delimiter is missing
    return len(s)
