-- Transfer packages (issue 22), a crash between writing a package and recording it: the
-- sequence number of a package is handed out (and committed) before anything of it is
-- written, so no later package reuses it (package_reservations: the last number handed
-- out for each partner); and the receiver keeps every package it imported
-- (package_imports), so a package that names its previous by sequence and digest is checked
-- against all of them, and a package whose producer never recorded it (written, then the
-- crash) does not stop the chain.
CREATE TABLE package_reservations (
    partner    TEXT PRIMARY KEY,
    sequence   INTEGER NOT NULL CHECK (sequence >= 1),
    updated_ns INTEGER NOT NULL
);
INSERT INTO package_reservations (partner, sequence, updated_ns)
    SELECT partner, sequence, updated_ns FROM package_chains WHERE direction = 'out';
CREATE TABLE package_imports (
    node        TEXT NOT NULL,
    partner     TEXT NOT NULL,
    sequence    INTEGER NOT NULL CHECK (sequence >= 1),
    digest      TEXT NOT NULL,
    imported_ns INTEGER NOT NULL,
    PRIMARY KEY (node, partner, sequence),
    UNIQUE (node, partner, digest)
);
INSERT INTO package_imports (node, partner, sequence, digest, imported_ns)
    SELECT node, partner, sequence, digest, updated_ns FROM package_chains WHERE direction = 'in';
