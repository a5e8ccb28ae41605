-- Indexes for every filter and sort the list APIs offer (issue 11: list pages in milliseconds at
-- 10,000 bentos). Each index is in the same column order and direction as the ORDER BY it
-- serves, so a page of 20 is read in index order and stops after 20 rows.

-- The versions of one repository, newest first: the repository's version list, its latest
-- version (one index seek per repository) and its number of versions (an index-only count).
-- Replaces versions_by_repository_build, a prefix of it.
DROP INDEX versions_by_repository_build;
CREATE INDEX versions_by_repository_newest ON versions (repository_uid, build_at DESC, created_at DESC, uid DESC);

-- The organization-wide version list, newest (or, read backwards, oldest) first: read in this
-- order, each row checked against its repository (organization and kind), until the page is
-- full. No `kind` prefix: a version has the kind of its repository, and the list filters on the
-- repository's, so that its total is counted repository by repository in the index above.
CREATE INDEX versions_newest ON versions (build_at DESC, created_at DESC, uid DESC);

-- The same list filtered by upload status (`q=status:...`, and the sweep of stuck uploads).
CREATE INDEX versions_by_status_newest ON versions (upload_status, build_at DESC, created_at DESC, uid DESC);

-- Label filters (`q=label:KEY=VALUE`): the resources that carry one label, whatever the
-- organization (the filter is joined to the organization's versions) ...
CREATE INDEX labels_by_pair ON labels (label_key, label_value, resource_uid);
-- ... whether one version carries a label, answered from the index alone ...
CREATE INDEX labels_by_resource ON labels (resource_uid, label_key, label_value);
-- ... and the repository of each of those versions, from the index alone (PostgreSQL reads no
-- table row for a total or a repository list filtered by label).
CREATE INDEX versions_by_uid_repository ON versions (uid, repository_uid);

-- Repository lists sorted by creation (default: newest first). Sorting by name uses the
-- UNIQUE (organization_uid, kind, name) index; a search by name is a substring match
-- (LIKE '%...%'), which no B-tree index can seek, so it scans that narrow index instead of the
-- table.
CREATE INDEX repositories_by_created ON repositories (organization_uid, kind, created_at DESC, name);
