-- Schema 19 (issue 20, item 3): four-eyes release. A change that widens what a cross-border
-- partner receives (a lower default TLP, a new recipient or sharing group, a grant in an
-- incident) is kept here as a pending approval, not applied, until a second releaser
-- approves it; then it is applied in the transaction that records the approval.
--
-- `kind`: `sharing` (a collection's sharing) or `grant` (a grant in an incident);
-- `target`: the collection id, or the incident id; `change`: the change as JSON, applied
-- to what is current when approved; `summary`: what it widens, in words, for the lists.
-- `requested_by` / `decided_by`: the person as the audit log names it (`user:NAME`,
-- `admin-token`, `operator`). `status`: pending | approved | rejected.
CREATE TABLE approvals (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    change TEXT NOT NULL,
    summary TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    requested_ns INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    decided_by TEXT,
    decided_ns INTEGER,
    reason TEXT
);
CREATE INDEX approvals_status ON approvals (status, requested_ns);
