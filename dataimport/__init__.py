"""Domain package of the data-import service: no Temporal imports live here."""
