-- Schema 22 (issue 20): what a pending approval asks, kept structured so that each reader
-- sees it in its own language. `request`: JSON, `{"subject": NAME, "widens": [ITEM, …]}`,
-- each item one thing the change widens for a cross-border partner (`what`: `tlp`,
-- `unmarked`, `grant`, `group`, `jurisdiction`, `personal-data`, `agreement`,
-- `pseudonyms`, with the partner, its jurisdiction and what it receives), rendered per
-- language when shown (`concord_coordination::release::Request`). NULL for approvals asked
-- before schema 22: their `summary` (English, written when asked) is shown as stored.
-- Approvals now also hold partner changes (`kind` `partner`, `target` the partner's name):
-- `partner update` that widens what a cross-border partner receives.
ALTER TABLE approvals ADD COLUMN request TEXT;
