"""Entry point: python -m medcodec.train.latent (see medcodec.train.latent_trainer)."""

from .latent_trainer import main

if __name__ == "__main__":
    main()
