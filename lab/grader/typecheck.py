"""Run a training script with jaxtyping's runtime shape checks on: `python lab/grader/typecheck.py train.py ARGS…`.

Used by `just smoke`: every jaxtyping annotation of the script is checked by beartype while it runs.
The script must define `main()` (train.py's contract).
"""

import importlib
import sys
from pathlib import Path

from jaxtyping import install_import_hook


def main() -> None:
    script = Path(sys.argv[1]).resolve()
    sys.argv = [str(script), *sys.argv[2:]]
    sys.path[0] = str(script.parent)  # import the script's directory, not lab/
    with install_import_hook(script.stem, "beartype.beartype"):
        module = importlib.import_module(script.stem)
    module.main()


if __name__ == "__main__":
    main()
