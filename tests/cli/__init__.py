"""The `mmrag` command line as a whole: its entry points and its place in the imports."""
