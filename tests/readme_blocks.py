"""The commands of a markdown file's ```bash blocks, as the README tests read them."""

import re


def bash_commands(text: str) -> list[str]:
    """Every command of the ```bash blocks of `text`: continuations joined, comments dropped, spaces single."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = "" if line.lstrip().startswith("#") else line.split(" #", 1)[0]
            if line.strip():
                commands.append(" ".join(line.split()))
    return commands
