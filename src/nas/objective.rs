//! Search objectives: train / val / gen-gap, pair penalty, latency hinge (spec §3, §4).
