-- The image of a bento version: the reference of the last successful build and why the last
-- build failed. The status itself stays in versions.image_build_status (Yatai 1.x's column).
CREATE TABLE image_builds (
    version_uid TEXT PRIMARY KEY REFERENCES versions (uid) ON DELETE CASCADE,
    image_reference TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '',
    updated_at BIGINT NOT NULL
);
