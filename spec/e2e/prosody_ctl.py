"""prosodyctl and the admin shell against a test server's own configuration."""

from __future__ import annotations

import collections
import subprocess

from prosody_host import is_prosody13, is_stock, prosodyctl_bin

CtlResult = collections.namedtuple("CtlResult", "returncode stdout stderr")
ShellResult = collections.namedtuple("ShellResult", "ok text returncode stdout stderr")


def shell_generate_words(host: str, flags) -> list:
    """`mod_invites generate HOST FLAGS` as Prosody 13's admin-shell command words:
    --reset USER -> invite create_reset USER@HOST; otherwise invite create_account HOST, with
    --admin as a first `--role prosody:admin` (what 13's handler does with its own, undeclared,
    admin flag); --role, --group and --expires-after pass through."""
    flags = list(flags)
    if "--reset" in flags:
        i = flags.index("--reset")
        user = flags[i + 1]
        del flags[i:i + 2]
        return ["invite", "create_reset", f"{user}@{host}", *flags]
    if "--admin" in flags:
        flags.remove("--admin")
        flags[:0] = ["--role", "prosody:admin"]
    return ["invite", "create_account", host, *flags]


def last_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1].strip() if lines else ""


class CtlMixin:
    """ProsodyServer's prosodyctl, admin-shell and account-creation side."""

    def prosodyctl(self, *args, timeout: float = 30, input: str | None = None) -> CtlResult:
        """prosodyctl --config <ours> ARGS... -> (returncode, stdout, stderr)."""
        try:
            cp = subprocess.run(
                [prosodyctl_bin(), "--config", str(self.config_path), *map(str, args)],
                input=input,
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=self.dir,
            )
        except subprocess.TimeoutExpired as e:
            raise AssertionError(
                f"prosodyctl {' '.join(map(str, args))} timed out after {timeout}s; "
                f"output so far: {e.stdout!r} {e.stderr!r}"
            ) from None
        return CtlResult(cp.returncode, cp.stdout, cp.stderr)

    def generate_invite(self, host: str | None = None, *flags) -> str:
        """prosodyctl mod_invites generate HOST FLAGS...; returns the printed URL/URI (last line).

        Stock 13 has no `generate` (it prints a deprecation notice and exits 1): on a stock server
        on 13 the same invite comes from 13's own command line, the admin shell of the running
        server (shell_generate_words() maps the flags)."""
        if is_stock(self) and is_prosody13():
            res = self.shell(*shell_generate_words(host or self.host, flags))
            if not res.ok:
                raise AssertionError(f"shell {shell_generate_words(host or self.host, flags)} failed: "
                                     f"{res.text}\n{res.stdout}{res.stderr}")
            links = [ln.strip() for ln in [res.text, *res.stdout.splitlines()]
                     if ln.strip().startswith(("xmpp:", "http://", "https://"))]
            assert links, f"no invite link in the shell's output: {res.stdout}"
            return links[0]
        res = self.prosodyctl("mod_invites", "generate", host or self.host, *flags)
        if res.returncode != 0:
            raise AssertionError(f"generate failed ({res.returncode}): {res.stdout}{res.stderr}")
        return last_line(res.stdout)

    def shell(self, *words: str, timeout: float = 20) -> ShellResult:
        """One admin-shell command against the running server.

        shell(LINE) runs `prosodyctl --config CFG shell LINE`: the client sends
        LINE as-is (Lua, e.g. 'invite:create_account("localhost")'), prints
        "OK: ..."/"Result: ..." on stdout, or the error on stderr with a
        non-zero exit status (0.12: 1; 13: the number of errors). Lines the
        command printed before its result come first on stdout.
        shell(WORD, WORD, ...) passes the words separately, 13's command form
        (`shell invite create_account localhost --role x`); 0.12 turns it into
        a Lua call with string arguments.
        Returns (ok, text, returncode, stdout, stderr); text is the result
        line with the "OK: "/"Error: " prefix removed.
        """
        if not words:
            raise ValueError("shell() needs a line or words")
        res = self.prosodyctl("shell", *words, timeout=timeout)
        out, err = res.stdout.strip(), res.stderr.strip()
        if res.returncode == 0 and not err:
            text = out.splitlines()[-1] if out else ""
            for prefix in ("OK: ", "Result: "):
                if text.startswith(prefix):
                    text = text[len(prefix):]
                    break
            return ShellResult(True, text, res.returncode, res.stdout, res.stderr)
        text = err or out
        text = text.splitlines()[-1] if text else ""
        for prefix in ("! Error: ", "Error: ", "! "):
            if text.startswith(prefix):
                text = text[len(prefix):]
                break
        return ShellResult(False, text, res.returncode, res.stdout, res.stderr)

    def shell_lines(self, *lines: str, timeout: float = 20) -> list[ShellResult]:
        """Several admin-shell commands on one connection (prosodyctl shell fed on stdin).

        The interactive client echoes a prompt per command and prefixes
        results with "| " (ok) or "! " (error); output is split per prompt.
        """
        res = self.prosodyctl("shell", "--quiet", input="".join(line + "\n" for line in lines),
                              timeout=timeout)
        chunks: list[list[str]] = []
        for raw in res.stdout.splitlines():
            # Without lua-readline the prompt is written with no newline, so a result can follow
            # it on the same line ("prosody> | OK: ..."); with readline it stands alone.
            while raw.startswith("prosody>"):
                chunks.append([])
                raw = raw[len("prosody>"):].lstrip(" ")
            if chunks and raw.startswith(("| ", "! ")):
                chunks[-1].append(raw)
        results = []
        for chunk in chunks[: len(lines)]:
            final = chunk[-1] if chunk else ""
            ok = final.startswith("| ")
            text = final[2:]
            for prefix in ("OK: ", "Result: ", "Error: "):
                if text.startswith(prefix):
                    text = text[len(prefix):]
                    break
            results.append(ShellResult(ok, text, res.returncode, "\n".join(chunk), res.stderr))
        if len(results) != len(lines):
            raise AssertionError(f"could not parse shell output for {lines!r}:\n{res.stdout}{res.stderr}")
        return results

    # ----------------------------------------------------------------- users

    def create_user(self, username: str, password: str, host: str | None = None) -> None:
        """Create an account directly (test API when loaded, else prosodyctl register)."""
        host = host or self.host
        if self.host_has_module("invites_testapi", host) and self.running:
            ok = self.api1("create_user", username, password, host=host)
            if not ok:
                raise AssertionError(f"could not create {username}@{host}")
            return
        res = self.prosodyctl("register", username, host, password)
        if res.returncode != 0:
            raise AssertionError(f"prosodyctl register {username} {host} failed: {res.stdout}{res.stderr}")
