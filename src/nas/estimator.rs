//! Gradient estimators of the architecture parameters (spec §2). Built by the estimator issue.
