"""`python -m medcodec ...` runs the command line."""

from medcodec.cli import main

if __name__ == "__main__":
    main()
