"""API keys: the format (:mod:`.format`), hashing at rest (:mod:`.hashing`), the gateway's
in-memory index and its sync (:mod:`.index`, :mod:`.sync`), change announcements
(:mod:`.notify`) and the lifecycle behind ``bastion keys`` (:mod:`.manager`)."""
