"""Prints the tutorial's worked example from both implementations, next to what
the document claims, with its errata.

    python -m experiments.document_example
"""

from jconv import document


def main() -> None:
    print(document.report())


if __name__ == "__main__":
    main()
