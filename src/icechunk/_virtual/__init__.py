"""Virtual chunk references: containers, location resolution and the fetchers that read them."""
