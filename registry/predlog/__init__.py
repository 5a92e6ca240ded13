"""The prediction log: what every served prediction was, found again by its id.

It lives in `registry/` because the contract gives the registry the persistence of the prediction
log (API → registry is an allowed import; the reverse is not), and it is a package because the
log has parts that change together: the ids (`ids`), the stored record and its binary COPY form
(`record`), writing it in a session (`write`) or through a child process (`process`, whose
child is `relay`), and reading it back (`reads`). The API keeps only its in-memory buffer
(`api.predlog`); labelled rows, which feedback joins to logged predictions, are
`registry.labelled`'s.

Nothing is re-exported here: `python -m registry.predlog.relay` imports this package, and the
relay process should load psycopg and little else.
"""
