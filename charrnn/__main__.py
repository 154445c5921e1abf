"""``python -m charrnn`` (also what ``torchrun -m charrnn`` runs)."""

from charrnn.cli.app import main

if __name__ == "__main__":
    main()
