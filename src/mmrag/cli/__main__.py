"""`python -m mmrag.cli`: the same app as the `mmrag` script, every command registered."""

from mmrag.cli.app import main

if __name__ == "__main__":
    main()
