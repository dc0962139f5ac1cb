-- The id an upstream gave an admitted job, scoped by upstream pool name: the gateway binds it at
-- admission and answers 404 to anyone but the job's customer on the job's own paths
-- (`owner_path` routes). NULL until bound; an id is bound to at most one job per upstream.
ALTER TABLE ledger_jobs ADD COLUMN upstream TEXT;
ALTER TABLE ledger_jobs ADD COLUMN upstream_job_id TEXT;
CREATE UNIQUE INDEX ledger_jobs_upstream_job ON ledger_jobs (upstream, upstream_job_id)
    WHERE upstream_job_id IS NOT NULL;
