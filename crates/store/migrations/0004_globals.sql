-- Organization-wide values that templated properties can use (`{{ globals.site }}`).
ALTER TABLE orgs ADD COLUMN globals TEXT NOT NULL DEFAULT '{}';
