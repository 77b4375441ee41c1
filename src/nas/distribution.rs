//! Factorised categorical architecture distributions (spec §1.1–1.2). Built by the estimator issue.
