-- Clusters and deployments. The desired state of every deployment lives here (never only in a
-- runtime's memory): after a restart, each cluster's runtime is reconciled from these rows.

-- Where deployments run: `local` (supervised processes on the server's machine, the embedded
-- default) or `kubernetes` (kube_config empty: the server's own cluster, in-cluster config).
CREATE TABLE clusters (
    uid TEXT PRIMARY KEY,
    organization_uid TEXT NOT NULL REFERENCES organizations (uid) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL,
    kube_config TEXT NOT NULL DEFAULT '',
    default_namespace TEXT NOT NULL DEFAULT 'default',
    creator_uid TEXT REFERENCES users (uid),
    created_at BIGINT NOT NULL,
    updated_at BIGINT,
    UNIQUE (organization_uid, name)
);

-- Every organization has its local cluster, `default` (created with the organization from now on).
INSERT INTO clusters (uid, organization_uid, name, description, kind, default_namespace, creator_uid, created_at)
SELECT 'cl-' || uid, uid, 'default', 'the server''s own machine', 'local', 'default', creator_uid, created_at
FROM organizations;

-- A deployment: what should be (desired: running | terminated) and what the runtime last saw
-- (status, status_reason, url).
CREATE TABLE deployments (
    uid TEXT PRIMARY KEY,
    organization_uid TEXT NOT NULL REFERENCES organizations (uid) ON DELETE CASCADE,
    cluster_uid TEXT NOT NULL REFERENCES clusters (uid) ON DELETE CASCADE,
    kube_namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    labels TEXT NOT NULL DEFAULT '[]',
    mode TEXT NOT NULL DEFAULT 'deployment',
    desired TEXT NOT NULL,
    status TEXT NOT NULL,
    status_reason TEXT NOT NULL DEFAULT '',
    url TEXT NOT NULL DEFAULT '',
    creator_uid TEXT REFERENCES users (uid),
    created_at BIGINT NOT NULL,
    updated_at BIGINT,
    status_updated_at BIGINT,
    UNIQUE (cluster_uid, kube_namespace, name)
);
CREATE INDEX deployments_by_org ON deployments (organization_uid, created_at);

-- Every change of a deployment is a new revision; exactly one is active. A rollback is a new
-- revision holding an old one's targets (rollback_of names it).
CREATE TABLE deployment_revisions (
    uid TEXT PRIMARY KEY,
    deployment_uid TEXT NOT NULL REFERENCES deployments (uid) ON DELETE CASCADE,
    number BIGINT NOT NULL,
    status TEXT NOT NULL,
    rollback_of TEXT NOT NULL DEFAULT '',
    creator_uid TEXT REFERENCES users (uid),
    created_at BIGINT NOT NULL,
    updated_at BIGINT,
    UNIQUE (deployment_uid, number)
);

-- The targets of a revision (one `stable` target; canary targets are stored, not served). The
-- bento is named, not referenced: a revision's record outlives the bento it ran. `config` is the
-- canonical spec (JSON) with the client's own config kept for round trips.
CREATE TABLE deployment_targets (
    uid TEXT PRIMARY KEY,
    revision_uid TEXT NOT NULL REFERENCES deployment_revisions (uid) ON DELETE CASCADE,
    target_type TEXT NOT NULL DEFAULT 'stable',
    bento_repository TEXT NOT NULL,
    bento_version TEXT NOT NULL,
    config TEXT NOT NULL,
    canary_rules TEXT NOT NULL DEFAULT '',
    creator_uid TEXT REFERENCES users (uid),
    created_at BIGINT NOT NULL
);
CREATE INDEX deployment_targets_by_revision ON deployment_targets (revision_uid);
