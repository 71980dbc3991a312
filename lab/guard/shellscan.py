"""Which paths a shell command may write, and which git-hook or META_MODE bypasses it attempts.

Standard library only, no I/O, no subprocess: the agent's PreToolUse hook calls it on every Bash command.
It reports path tokens as written; the hook resolves them against the filesystem and decides.
"""

from __future__ import annotations

import posixpath
import re
from collections import namedtuple

from lab.guard.shelllex import MAX_DEPTH, Tok, Unparseable, lex

# kind: "write" | "bypass" | "unparseable"; target: write: the path token as written ("?" = unknown),
# bypass: the flag/assignment, unparseable: the command; why: the construct, e.g. "`sed -i`".
# (namedtuple, not dataclass: dataclasses costs milliseconds to import on every hook call)
Finding = namedtuple("Finding", "kind target why")


def scan(command: str) -> list[Finding]:
    """Every write and hook bypass `command` may perform; a single "unparseable" finding if it cannot be read."""
    out: list[Finding] = []
    try:
        _scan_into(command, out, 0)
    except Exception:  # Unparseable, RecursionError, or a bug here: the hook must fail closed, never crash
        return [Finding("unparseable", command, "could not parse the command")]
    if any(f.kind == "write" and re.search(r"[$`]", f.target) for f in out):  # `F=eval.py; rm "$F"`
        out.append(Finding("write", "?", "a write target is computed by the shell"))
    return list(dict.fromkeys(out))


def mentioned_paths(command: str) -> list[str]:
    """Every word or quoted string of `command` (also inside -c code and heredocs) that looks like a path."""
    words: list[str] = []
    _mentioned(command, words, set(), 0)
    return list(dict.fromkeys(w for w in words if _looks_like_path(w)))


def _mentioned(command: str, words: list[str], seen: set[str], depth: int) -> None:
    seen.add(command)  # nested substitutions repeat their text at every level: expand each text once
    words += re.split(r"""[\s'"`\\;&|()<>=,]+""", command)  # crude, so it also works on unparseable input
    try:
        subs: list[list[Tok]] = []
        for tok in [t for toks in [lex(command, 0, subs)[0], *subs] for t in toks if t.kind == "word"]:
            words += [tok.text, *tok.text.split("=", 1)[1:]]
            for code in (tok.text, tok.body or ""):
                if code not in seen and re.search(r"\s", code) and depth < MAX_DEPTH:  # -c code, heredocs
                    _mentioned(code, words, seen, depth + 1)
    except Exception:  # the crude split above still holds what it found
        pass


# ---------------------------------------------------------------- analysis

def _scan_into(command: str, out: list[Finding], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise Unparseable("nested too deep")
    subs: list[list[Tok]] = []
    toks, _ = lex(command, 0, subs)
    for tokens in [toks, *subs]:
        words: list[str] = []
        redirs: list[tuple[str, Tok]] = []
        piped, want = False, None
        for t in [*tokens, Tok("op", ";")]:
            if want is not None:
                if t.kind != "word":
                    raise Unparseable("redirection without a target")
                redirs.append((want, t))
                want = None
            elif t.kind == "redir":
                want = t.text
            elif t.kind == "word":
                words.append(t.text)
            else:
                stdin = _redirects(redirs, out)
                if words:
                    _command(words, stdin, piped, out, depth)
                words, redirs, piped = [], [], t.text in ("|", "|&")


_DEVICES = {"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty"}


def _redirects(redirs: list[tuple[str, Tok]], out: list[Finding]) -> str | None:
    """Report the files that redirections write; return the heredoc or here-string text fed to stdin, if any."""
    stdin = None
    for op, tok in redirs:
        bare = op.lstrip("0123456789")
        if bare in ("<<", "<<-", "<<<"):
            stdin = (tok.body if bare != "<<<" else tok.text) or ""
            _markers([stdin], out)  # `cat > x <<EOF` may carry a hooksPath or disableAllHooks
        elif bare in ("<", "<&") or (bare == ">&" and (tok.text.isdigit() or tok.text == "-")):
            continue  # a read, or `2>&1` / `>&2`: a descriptor copy
        elif tok.text not in _DEVICES and not tok.text.startswith(("<(", ">(")):
            out.append(Finding("write", tok.text, f"output redirect `{op}`"))
    return stdin


_ASSIGN = re.compile(r"([A-Za-z_]\w*)\+?=")
_SENSITIVE = re.compile(r"META_MODE|LAB_PYTHON|GIT_DIR|GIT_WORK_TREE|GIT_INDEX_FILE|GIT_CONFIG\w*")
_KEYWORDS = {"!", "{", "}", "then", "do", "else", "if", "elif", "while", "until", "fi", "done", "esac"}
_ASSIGNERS = {"export", "declare", "typeset", "local", "readonly", "let", "read"}
_SHELLS = {"bash", "sh", "zsh", "dash", "ksh", "ash", "fish"}
_READERS = {"grep", "egrep", "fgrep", "rg", "ag", "cat", "less", "more", "head", "tail", "ls", "wc", "diff", "bat"}


def _command(w: list[str], stdin: str | None, piped: bool, out: list[Finding], depth: int) -> None:
    """Findings for one simple command given as its words; `stdin` is the heredoc text fed to it, if any."""
    while w and (w[0] in _KEYWORDS or _ASSIGN.match(w[0])):
        if m := _ASSIGN.match(w[0]):
            _assignment(m.group(1), w[0], out)
            _markers(w[:1], out)
        w = w[1:]
    if not w or w[0] in ("for", "select", "case", "function"):
        return
    name, args = w[0].rsplit("/", 1)[-1], w[1:]
    if name in _WRAPPERS or name == "uv":
        if inner := _unwrap(name, args, out):
            _command(inner, stdin, piped, out, depth)
        return
    if name not in _READERS and name != "git":
        _markers(w, out)
    if "$" in name or "`" in name:  # `$EDITOR f`, `$(echo rm) f`: what runs is unknown
        out.append(Finding("write", "?", "a computed command name"))
    elif name == "git":
        _git(args, out)
    elif name in _SHELLS:
        _shell(name, args, stdin, piped, out, depth)
    elif name == "eval":
        _scan_into(" ".join(args), out, depth + 1)
    elif name == "watch" or name == "pueue" and args[:1] == ["add"]:  # they run their words as one shell command
        _, inner = _parse(args[name == "pueue":], "nqwdgaol", _QUEUE_LONG, stop=True)
        _scan_into(" ".join(inner), out, depth + 1)
    elif name in _ASSIGNERS or name == "printf":
        names = [args[i + 1] for i in range(len(args) - 1) if args[i] == "-v"] if name == "printf" else args
        for a in names:
            if not a.startswith(("-", "+")):
                _assignment(a.split("=", 1)[0].rstrip("+"), a, out)
    elif name == "xargs":
        _, inner = _parse(args, "adEILnPs", _XARGS_LONG, attached="eil", stop=True)
        _fed(inner, f"`xargs {inner[0]}` gets its operands from stdin" if inner else "", [], out, depth)
    elif name == "find":
        _find(args, out, depth)
    elif name in ("awk", "gawk", "mawk", "nawk"):
        _awk(name, args, out)
    elif name in ("sed", "perl", "ruby"):
        _inplace(name, args, stdin, piped, out, depth)
    elif lang := _interpreter(name):
        _interpreter_code(lang, args, stdin, piped, out, depth)
    elif name in _WRITERS:
        _writer(name, args, out)
    else:
        _other_writer(name, args, out)


def _assignment(name: str, word: str, out: list[Finding]) -> None:
    if _SENSITIVE.fullmatch(name):
        out.append(Finding("bypass", word, f"sets `{name}`, which the guard trusts to come from the human"))


_MARKERS = re.compile(r"core\.hookspath|extensions\.worktreeconfig|disableallhooks|\binclude(?:if\.\S*)?\.path\b",
                      re.IGNORECASE)
_MARKER_WHY = {"core.hookspath": "`core.hooksPath` moves the git hooks",
               "extensions.worktreeconfig": "`extensions.worktreeConfig` lets a worktree override the git hooks",
               "disableallhooks": "`disableAllHooks` turns the agent hooks off"}


def _markers(words: list[str], out: list[Finding]) -> None:
    """Bypass findings for hook-disabling settings named in `words` (arguments, code, heredoc text)."""
    for word in words:
        for m in _MARKERS.finditer(word):
            why = _MARKER_WHY.get(m.group().lower(), "an include of another git config can set `core.hooksPath`")
            out.append(Finding("bypass", m.group() if re.search(r"\s", word) else word, why))


def _parse(args: list[str], short: str = "", long: frozenset[str] | set[str] = frozenset(), attached: str = "",
           stop: bool = False) -> tuple[list[tuple[str, str]], list[str]]:
    """GNU-style options: ([(option, value)], operands). `short`/`long` options take a value, `attached`
    letters take the rest of their cluster (`-i.bak`); `stop`: the first operand ends the options."""
    opts: list[tuple[str, str]] = []
    ops: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        i += 1
        if a == "--":
            ops += args[i:]
            break
        if a.startswith("--"):
            name, eq, val = a.partition("=")
            if not eq and name in long and i < len(args):
                val, i = args[i], i + 1
            opts.append((name, val))
        elif a.startswith("-") and len(a) > 1:
            for j, ch in enumerate(a[1:], 2):
                if ch in short or ch in attached:
                    val = a[j:]
                    if not val and ch in short and i < len(args):
                        val, i = args[i], i + 1
                    opts.append(("-" + ch, val))
                    break
                opts.append(("-" + ch, ""))
        else:
            ops.append(a)
            if stop:
                ops += args[i:]
                break
    return opts, ops


def _has(opts: list[tuple[str, str]], *names: str) -> bool:
    return any(n in names for n, _ in opts)


def _value(opts: list[tuple[str, str]], *names: str) -> str:
    return next((v for n, v in reversed(opts) if n in names), "")


# ---------------------------------------------------------------- wrappers: the command they run is scanned

_WRAPPERS = {  # wrapper: (short options with a value, long options with a value)
    "sudo": ("ugCDprtUT", {"--user", "--group", "--chdir", "--prompt", "--role", "--type", "--other-user",
                           "--host", "--close-from", "--command-timeout"}),
    "env": ("uCS", {"--unset", "--chdir", "--split-string"}),
    "nice": ("n", {"--adjustment"}),
    "nohup": ("", set()),
    "setsid": ("", set()),
    "timeout": ("sk", {"--signal", "--kill-after"}),
    "time": ("fo", {"--format", "--output"}),
    "command": ("", set()),
    "exec": ("a", set()),
    "builtin": ("", set()),
    "stdbuf": ("ioe", {"--input", "--output", "--error"}),
    "uv run": ("pwf", {"--with", "--with-editable", "--with-requirements", "--python", "--project", "--directory",
                    "--package", "--extra", "--group", "--only-group", "--no-group", "--env-file", "--index",
                    "--default-index", "--index-url", "--extra-index-url", "--find-links", "--config-file",
                    "--cache-dir", "--color", "--python-preference", "--link-mode", "--resolution", "--prerelease",
                    "--exclude-newer", "--index-strategy", "--keyring-provider", "--refresh-package"}),
}
_QUEUE_LONG = {"--interval", "--working-directory", "--delay", "--group", "--after", "--priority", "--label"}
_XARGS_LONG = {"--arg-file", "--delimiter", "--max-lines", "--max-args", "--max-procs", "--max-chars",
               "--process-slot-var"}


def _unwrap(name: str, args: list[str], out: list[Finding]) -> list[str]:
    """The command a wrapper runs (sudo, env, nice, nohup, timeout, time, command, exec, stdbuf, uv run)."""
    if name == "uv":
        if args[:1] != ["run"]:
            return []
        name, args = "uv run", args[1:]
    opts, ops = _parse(args, *_WRAPPERS[name], stop=True)
    if name == "command" and _has(opts, "-v", "-V"):
        return []  # a lookup, runs nothing
    if name == "timeout":
        ops = ops[1:]  # the duration
    if name == "env":
        ops = ops[ops[:1] == ["-"]:]
        if split := _value(opts, "-S", "--split-string"):
            ops = [t.text for t in lex(split, 0, [])[0] if t.kind == "word"] + ops
    if name == "time" and (log := _value(opts, "-o", "--output")):
        out.append(Finding("write", log, "`time -o`"))
    return ops


def _fed(inner: list[str], why: str, starts: list[str], out: list[Finding], depth: int) -> None:
    """`xargs CMD` / `find -exec CMD {}`: CMD's explicit targets, plus "?" (and `starts`) if CMD writes."""
    if not inner:
        return
    found: list[Finding] = []
    for words in (inner, inner + ["{}"]):  # the operands it is fed land where "{}" stands
        _command(words, None, False, found, depth)
    out += [f for f in found if "{}" not in f.target]
    if any(f.kind == "write" for f in found):
        out += [Finding("write", t, why) for t in ["?", *starts]]


def _find(args: list[str], out: list[Finding], depth: int) -> None:
    i = 0
    while i < len(args) and args[i] in ("-H", "-L", "-P", "-D") or args[i:i + 1] and args[i].startswith("-O"):
        i += 1 + (args[i] == "-D")
    starts = []
    while i < len(args) and not args[i].startswith(("-", "(", "!", ")", ",")):
        starts.append(args[i])
        i += 1
    starts = starts or ["."]
    while i < len(args):
        a, i = args[i], i + 1
        if a == "-delete":
            out += [Finding("write", t, "`find -delete`") for t in ["?", *starts]]
        elif a in ("-exec", "-execdir", "-ok", "-okdir"):
            end = next((k for k in range(i, len(args)) if args[k] in (";", "+")), len(args))
            _fed(args[i:end], f"`find {a} {args[i] if i < end else ''}`", starts, out, depth)
            i = end + 1
        elif a in ("-fprint", "-fprint0", "-fprintf", "-fls") and i < len(args):
            out.append(Finding("write", args[i], f"`find {a}`"))


# ---------------------------------------------------------------- git

_GIT_GLOBAL_VALUE = {"-C", "-c", "--git-dir", "--work-tree", "--namespace", "--exec-path", "--super-prefix",
                     "--config-env", "--attr-source"}
_GIT_READS = {"log", "show", "diff", "grep", "blame", "status", "shortlog", "reflog"}
_COMMIT_LONG = {"--message", "--file", "--reuse-message", "--reedit-message", "--fixup", "--squash", "--author",
                "--date", "--cleanup", "--template", "--trailer", "--pathspec-from-file", "--gpg-sign"}


def _git(args: list[str], out: list[Finding]) -> None:
    i, cwd = 0, ""
    while i < len(args) and args[i].startswith("-"):
        if args[i].split("=")[0] in ("--git-dir", "--work-tree"):
            out.append(Finding("bypass", args[i], f"`{args[i].split('=')[0]}` points git at another repository"))
        if args[i] == "-C" and i + 1 < len(args):
            cwd = posixpath.join(cwd, args[i + 1])
        i += 1 + (args[i] in _GIT_GLOBAL_VALUE)
    sub, rest = (args[i], args[i + 1:]) if i < len(args) else ("", [])
    _git_bypasses(args[:i], sub, rest, out)

    def write(targets: list[str], why: str) -> None:  # `git -C DIR`: paths are relative to DIR
        out.extend(Finding("write", posixpath.normpath(posixpath.join(cwd, t)) if cwd and t != "?" else t, why)
                   for t in targets)

    if sub == "checkout":
        if "--" in rest:
            write(rest[rest.index("--") + 1:], "`git checkout --`")
        else:
            opts, ops = _parse(rest, "bB", {"--orphan", "--conflict"})
            if _has(opts, "--pathspec-from-file"):
                write(["?"], "`git checkout --pathspec-from-file`")
            elif not _has(opts, "-b", "-B", "--orphan", "--detach"):
                write(ops[1:] or ops, "`git checkout`")  # one operand: a branch, or a path git restores
    elif sub in ("restore", "rm", "mv"):
        opts, ops = _parse(rest, "s", {"--source", "--pathspec-from-file"})
        index_only = _has(opts, "--cached") or _has(opts, "-S", "--staged") and not _has(opts, "-W", "--worktree")
        if not index_only:
            write(ops or ["?"] * _has(opts, "--pathspec-from-file"), f"`git {sub}`")
    elif sub == "stash" and rest[:1] not in (["list"], ["show"]):
        write(["."], "`git stash`")
    elif sub == "reset" and (flag := next((a for a in rest if a in ("--hard", "--merge", "--keep")), None)):
        write(["."], f"`git reset {flag}`")
    elif sub == "clean" and not _has(_parse(rest, "e", {"--exclude"})[0], "-n", "--dry-run"):
        write(["."], "`git clean`")
    elif sub == "apply" and ("--apply" in rest or not {"--check", "--stat", "--numstat", "--summary",
                                                         "--cached"} & set(rest)):
        write(["?"], "`git apply`")
    elif sub == "am":
        write(["?"], "`git am`")


def _git_bypasses(globals_: list[str], sub: str, rest: list[str], out: list[Finding]) -> None:
    """--no-verify, commit -n, core.hooksPath, config --worktree, update-index --skip-worktree, computed args."""
    words = [*globals_, sub, *rest]
    real = [a for k, a in enumerate(words) if not _is_message(words[k - 1:k]) and not _is_message([a], attached=True)]
    if sub not in _GIT_READS:
        _markers(real, out)
    for a in real:  # git accepts unambiguous prefixes (`--no-veri`); an alias value may hold the flag
        if a.startswith("--no-v") and "--no-verify".startswith(a) or "--no-verify" in a:
            out.append(Finding("bypass", "--no-verify" if re.search(r"\s", a) else a,
                               "`--no-verify` skips the git hooks"))
    computed = [globals_[k + 1] for k in range(len(globals_) - 1) if globals_[k] == "-c"] + [sub]
    if sub == "commit":
        opts, ops = _parse(rest, "mFCct", _COMMIT_LONG, attached="Su")
        if _has(opts, "-n"):
            out.append(Finding("bypass", "-n", "`git commit -n` skips the git hooks"))
        computed += ops + [n for n, _ in opts]  # `git commit $FLAGS`; option values (the message) are left out
    elif sub == "config" and "--worktree" in rest:
        out.append(Finding("bypass", "--worktree", "`git config --worktree` lets a worktree override the git hooks"))
    elif sub == "update-index":
        for flag in sorted({"--assume-unchanged", "--skip-worktree"} & set(rest)):
            out.append(Finding("bypass", flag, f"`git update-index {flag}` hides changes from git"))
    for a in computed:  # `git -c "$X" commit`, `git $CMD`, `git commit $FLAGS`
        if re.search(r"[$`]", a):
            out.append(Finding("bypass", a, "a computed git argument could be `--no-verify` or `core.hooksPath`"))


def _is_message(prev: list[str], attached: bool = False) -> bool:
    """Whether the word after `prev` (or, `attached`, the word itself) is a commit/tag message: its text is prose."""
    if not prev or not prev[0].startswith("-"):
        return False
    a = prev[0]
    if attached:
        return a.startswith("--message=") or (a.startswith("-m") and len(a) > 2 and not a.startswith("--"))
    return a == "--message" or (not a.startswith("--") and a.endswith("m") and a[1:].isalpha())


# ---------------------------------------------------------------- shells and interpreters

def _shell(name: str, args: list[str], stdin: str | None, piped: bool, out: list[Finding], depth: int) -> None:
    """`bash -c CODE`, `bash <<EOF`, `… | sh`: scan the code they run."""
    i, code_flag, stdin_flag = 0, False, False
    while i < len(args) and args[i][:1] in ("-", "+") and args[i] not in ("-", "--"):
        a, i = args[i], i + 1
        if not a.startswith("--"):
            code_flag, stdin_flag = code_flag or "c" in a, stdin_flag or "s" in a
            i += a[-1] in "oO"  # `-o pipefail`, `-euxo pipefail`: the option's name follows
        elif a in ("--rcfile", "--init-file"):
            i += 1
    ops = args[i + (args[i:i + 1] == ["--"]):]
    if code_flag:
        code = ops[0] if ops else ""
        _scan_into(code, out, depth + 1)
    elif stdin_flag or not ops or ops[0] == "-":
        if stdin is not None:
            _scan_into(stdin, out, depth + 1)
        elif piped:
            out.append(Finding("write", "?", f"`{name}` runs commands from a pipe"))


def _interpreter(name: str) -> str:
    m = re.fullmatch(r"(python|pypy|ipython|node|nodejs|bun)[\d.]*", name)
    return ("python" if m.group(1).endswith(("python", "pypy")) else "node") if m else ""


def _interpreter_code(lang: str, args: list[str], stdin: str | None, piped: bool, out: list[Finding],
                      depth: int) -> None:
    """python -c / node -e code, or code from a heredoc: scan it for file writes."""
    if lang == "python":
        opts, ops = _parse(args, "cmWXQ", {"--check-hash-based-pycs"}, stop=True)
        code = _value(opts, "-c")
        if _has(opts, "-m"):
            return
    else:
        opts, ops = _parse(args, "eprC", {"--eval", "--print", "--require", "--import", "--input-type"})
        code = "\n".join(v for n, v in opts if n in ("-e", "-p", "--eval", "--print"))
    if code:
        _code(code, f"{lang} -{'c' if lang == 'python' else 'e'}", out, depth)
    elif not ops or ops[0] == "-":
        _stdin_code(lang, stdin, piped, out, depth)


def _stdin_code(lang: str, stdin: str | None, piped: bool, out: list[Finding], depth: int) -> None:
    """Code an interpreter reads from stdin: a heredoc's is scanned, a pipe's is unknown ("?")."""
    if stdin is not None:
        _code(stdin, f"{lang} heredoc", out, depth)
    elif piped:
        out.append(Finding("write", "?", f"{lang} runs code from a pipe"))


_INPLACE = {  # name: (short options with a value, letters taking the rest of their cluster, script options)
    "sed": ("efl", "i", ("-e", "-f", "--expression", "--file")),
    "perl": ("eEI", "iMmdDxC", ("-e", "-E")),
    "ruby": ("eIrCEF", "iKTWx", ("-e",)),
}


def _inplace(name: str, args: list[str], stdin: str | None, piped: bool, out: list[Finding], depth: int) -> None:
    """`sed -i`, `perl -pi -e`, `ruby -i`: the file operands after the script are rewritten; -e code is scanned."""
    short, attached, script_opts = _INPLACE[name]
    opts, ops = _parse(args, short, {"--expression", "--file", "--line-length"}, attached=attached)
    files = [a for a in ops if a][0 if _has(opts, *script_opts) else 1:]  # `sed -i '' …` (BSD): '' is a suffix
    if _has(opts, "-i", "--in-place"):
        out.extend(Finding("write", f, f"`{name} -i`") for f in files)
    if name == "sed":
        return
    if code := "\n".join(v for n, v in opts if n in script_opts):
        _code(code, f"{name} -e", out, depth)
    elif not ops:
        _stdin_code(name, stdin, piped, out, depth)


def _awk(name: str, args: list[str], out: list[Finding]) -> None:
    """`awk '{print > "f"}'`, `gawk -i inplace`; `system()` and `| "cmd"` run commands: "?"."""
    opts, ops = _parse(args, "Fvfi", {"--field-separator", "--assign", "--file", "--include"}, stop=True)
    program, files = ("", ops) if _has(opts, "-f", "--file") else (ops[0] if ops else "", ops[1:])
    targets = re.findall(r'>>?\s*"([^"]+)"', program)
    targets += files if _value(opts, "-i", "--include") == "inplace" else []
    targets += ["?"] if re.search(r'\bsystem\s*\(|\|\s*"|"\s*\|', program) else []
    out.extend(Finding("write", t, f"`{name}` writes a file") for t in targets if t not in _DEVICES)


_CODE_WRITE = re.compile(r"""
    \bopen\s*\((?:[^()]|\([^()]*\)){0,200}?['"][rbtU]*[wax+][rbt+]*['"]  # open(…, 'w'), Path(…).open('a')
  | \bopen\b[^;\n]{0,200}?['"]\s*(?:\+?>|\+<)                             # perl open(F, '>', …), open(F, ">f")
  | \.(?:write_text|write_bytes|unlink|symlink_to|hardlink_to|touch|mkdir|rmdir|chmod
       |save|savez\w*|savefig|savetxt|to_csv|to_parquet|write_csv|write_parquet|write_json)\s*\(
  | \.rename\s*\((?!\s*(?:\{|columns\b|index\b|mapper\b))                  # Path.rename, not a DataFrame's
  | \bos\.(?:remove|unlink|rename|replace|rmdir|removedirs|mkdir|makedirs|symlink|link|chmod|chown|truncate|utime)\b
  | \bshutil\.(?!which\b|disk_usage\b|get_terminal_size\b)\w+
  | \bFile(?:Utils)?\.(?:write|delete|unlink|rename|rm|mv|cp|touch|mkdir|symlink|chmod)  # ruby
  | \bfs(?:\.promises)?\.(?:write|append|copy|cp|rm|unlink|rename|mkdir|chmod|symlink|truncate|createWriteStream)
  | \b(?:writeFile|appendFile|copyFile|cp|rm|unlink|rename|mkdir|chmod|symlink|truncate)Sync\b        # node
  | (?<![\w.])(?:unlink|rename|rmdir|mkdir|chmod|chown|symlink|truncate)\s*[(\s]['"$@]  # perl builtins
""", re.VERBOSE)
_CODE_SHELL = re.compile(r"\bos\.(?:system|popen|exec\w*|spawn\w*)|\bsubprocess\b|\bpty\.spawn|\bsystem\s*\(|"
                         r"\bchild_process\b|\bexec(?:Sync)?\s*\(|\bspawn(?:Sync)?\s*\(|\bIO\.popen|\bOpen3\b")
_CODE_ENV = re.compile(r"(?:environ|ENV|env)\b[^;\n]{0,30}?\b(%s)\b['\"]?\s*[\]}]?\s*(?:=(?!=)|:)"
                       r"|(?:putenv|setenv)\s*\(\s*['\"]?(%s)" % ((_SENSITIVE.pattern,) * 2))
_LITERAL = re.compile(r"""'((?:\\.|[^'\\\n])*)'|"((?:\\.|[^"\\\n])*)\"""")


def _code(code: str, lang: str, out: list[Finding], depth: int) -> None:
    """Findings for interpreter source: a write construct makes each path-like string literal a target."""
    _markers([code], out)
    if "--no-verify" in code:
        out.append(Finding("bypass", "--no-verify", "`--no-verify` skips the git hooks"))
    for m in _CODE_ENV.finditer(code):
        _assignment(m.group(1) or m.group(2), m.group(1) or m.group(2), out)
    shell = _CODE_SHELL.search(code)
    if not (shell or _CODE_WRITE.search(code)):
        return
    literals = [a or b for a, b in _LITERAL.findall(code)]
    found = [Finding("write", p, f"{lang} writes a file") for p in (x.lstrip("+<> ") for x in literals)
             if _looks_like_path(p)]
    for literal in literals if shell else []:  # os.system("rm x"), subprocess.run("…", shell=True)
        nested: list[Finding] = []
        try:
            _scan_into(literal, nested, depth + 1)
        except Unparseable:
            continue
        found += [f for f in nested if f.kind != "unparseable"]
    out += found or [Finding("write", "?", f"{lang} {'runs a command' if shell else 'writes a file'}")]


def _looks_like_path(s: str) -> bool:
    """A token that names a file: has a "/", a file suffix (eval.py, .git), or is ., .. or ~…"""
    return (0 < len(s) < 4096 and not s.startswith("-") and "://" not in s and not re.search(r"\s", s)
            and bool(re.fullmatch(r"\.\.?|~.*|.*/.*|[\w.@+*?\[\]-]*\.[A-Za-z_][\w-]{0,15}", s)))


# ---------------------------------------------------------------- file-writing commands

_WRITERS = {  # name: (which operands it writes, short options with a value, long options with a value)
    "tee": ("all", "", set()),
    "cp": ("dest", "St", {"--suffix", "--target-directory"}),
    "install": ("dest", "gmoSt", {"--group", "--mode", "--owner", "--suffix", "--target-directory"}),
    "rsync": ("dest", "efTBM@", {"--rsh", "--filter", "--exclude", "--include", "--exclude-from", "--include-from",
                                 "--files-from", "--temp-dir", "--partial-dir", "--backup-dir", "--compare-dest",
                                 "--link-dest", "--copy-dest", "--log-file", "--chmod", "--chown", "--suffix",
                                 "--timeout", "--bwlimit", "--max-size", "--min-size", "--password-file", "--port",
                                 "--out-format", "--remote-option"}),
    "mv": ("all", "St", {"--suffix", "--target-directory"}),
    "ln": ("all", "St", {"--suffix", "--target-directory"}),
    "rm": ("all", "", set()),
    "rmdir": ("all", "", set()),
    "unlink": ("all", "", set()),
    "shred": ("all", "ns", {"--iterations", "--size", "--random-source"}),
    "touch": ("all", "dtr", {"--date", "--reference"}),
    "truncate": ("all", "sr", {"--size", "--reference"}),
    "mkdir": ("all", "m", {"--mode"}),
    "chmod": ("after-mode", "", set()),
    "chown": ("after-mode", "", set()),
    "chgrp": ("after-mode", "", set()),
    "patch": ("patch", "piodrDBFVzYg", {"--strip", "--input", "--output", "--directory", "--reject-file",
                                        "--ifdef", "--prefix", "--fuzz", "--version-control", "--suffix"}),
    **dict.fromkeys(("vim", "vi", "nvim", "ex"), ("edit", "cSuUiTswWtq", {"--cmd", "--servername"})),
    "nano": ("edit", "YTrosQX", set()),
    "ed": ("edit", "p", set()),
    "emacs": ("edit", "lLf", {"--eval", "--load", "--funcall", "--directory"}),
}
_WHY = {"all": "`{}` operand", "dest": "`{}` destination", "after-mode": "`{}` operand", "patch": "`patch`",
        "edit": "`{}` edits the file"}


def _writer(name: str, args: list[str], out: list[Finding]) -> None:
    which, short, long = _WRITERS[name]
    mode_flag = name == "chmod" and any(re.fullmatch(r"-[rwxXst]+", a) for a in args)  # `chmod -w f`: a mode
    opts, ops = _parse([a for a in args if not (mode_flag and re.fullmatch(r"-[rwxXst]+", a))], short, long)
    targets = ops
    if name in ("cp", "install", "mv", "ln") and (directory := _value(opts, "-t", "--target-directory")):
        targets = [directory] + (ops if which == "all" else [])
    elif which == "dest" and not _has(opts, "--remove-source-files") and not (name == "install" and _has(opts, "-d")):
        targets = ops[-1:] if len(ops) > 1 else []
    elif which == "after-mode" and not mode_flag and not _has(opts, "--reference"):
        targets = ops[1:]
    elif which == "patch":
        targets = ops[:1] + [v for v in [_value(opts, "-o", "--output")] if v not in ("", "-")] or ["?"]
    elif which == "edit":
        targets = [a for a in ops if not a.startswith("+")] or ["?"]  # no file: it can `:w` anything
    out.extend(Finding("write", t, _WHY[which].format(name)) for t in targets
               if t and t not in _DEVICES and not t.startswith(("<(", ">(")))  # `tee >(gzip > f)`: a pipe


_OUTPUT_OPTION = {"sort": ("o", "--output"), "curl": ("o", "--output"), "wget": ("O", "--output-document")}
_COMPRESSORS = {"gzip", "gunzip", "bzip2", "bunzip2", "xz", "unxz", "zstd", "unzstd"}


def _other_writer(name: str, args: list[str], out: list[Finding]) -> None:
    """dd of=, sort -o, curl -o, wget -O, tar/unzip extraction, gzip & co (which replace their operands)."""
    if name == "dd":
        out.extend(Finding("write", a[3:], "`dd of=`") for a in args if a.startswith("of=") and a[3:] not in _DEVICES)
    elif name in _OUTPUT_OPTION:
        letter, long = _OUTPUT_OPTION[name]
        for k, a in enumerate(args):
            if a.startswith(long + "="):
                value = a.split("=", 1)[1]
            elif a == long or re.fullmatch(rf"-[A-Za-z]*{letter}", a):  # `-o FILE`, `-sSLo FILE`
                value = args[k + 1] if k + 1 < len(args) else ""
            else:
                value = a[2:] if a.startswith("-" + letter) else ""  # `-oFILE`
            if value not in ("", "-", *_DEVICES):
                out.append(Finding("write", value, f"`{name} -{letter}`"))
    elif name in ("tar", "unzip"):
        mode = "".join(a.lstrip("-") for a in args if a.startswith("-") and not a.startswith("--")) + (
            args[0] if args and name == "tar" else "")
        if name == "unzip" and not re.search(r"[lptvZ]", mode) or "x" in mode or "--extract" in args:
            dirs = [args[k + 1] for k in range(len(args) - 1) if args[k] in ("-C", "-d", "--directory")]
            out.extend(Finding("write", t, f"`{name}` extracts files") for t in ["?", *dirs])
    elif name in _COMPRESSORS:
        opts, ops = _parse(args, "S", {"--suffix"})
        if not _has(opts, "-c", "--stdout", "-l", "--list", "-t", "--test"):
            out.extend(Finding("write", a, f"`{name}` replaces the file") for a in ops)
