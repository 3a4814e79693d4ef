"""``python -m olinkpipe``: the same as the ``olinkpipe`` command."""

import sys

if __name__ == "__main__":
    try:
        from .cli import main
    except KeyboardInterrupt:  # Ctrl-C while the libraries load
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(main())
