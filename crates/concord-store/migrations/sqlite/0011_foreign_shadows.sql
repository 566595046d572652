-- Whether a foreign version shadows the node's versions of its object for its writer (issue
-- 15, attack round 2 finding 4 of issue 18): a partner that wrote over an object withheld from
-- it reads that object as only its own versions, so that no version selector (`last` by
-- default) picks a withheld version, then withholds it, and so tells that it exists. The
-- versions an operator's take-over made foreign (their writer created the object here and
-- receives what it is sent of the operator's versions) do not: 0. Rows from before are taken
-- as shadowing, the side that tells nothing (their writer may stop reading versions of a
-- taken-over object that it would receive).
ALTER TABLE foreign_versions ADD COLUMN shadows INTEGER NOT NULL DEFAULT 1;

-- A writer's foreign versions in a collection, looked up by every read of its own view.
CREATE INDEX foreign_versions_by_writer ON foreign_versions (collection_id, writer);
